"""The backends by name, and the choice `backend="auto"` makes for each parameter."""
from __future__ import annotations

import torch

from .base import Backend, Runner, StateLayout, StepConfig
from .cpu import CpuBackend
from .cuda import CudaBackend
from .cuda_host import CudaHostBackend
from .local_shards import LocalShardRunner, local_shard
from .torch_fallback import TorchBackend
from .triton_backend import TritonBackend


BACKENDS: dict[str, Backend] = {
    "cpu": CpuBackend(),
    "cuda": CudaBackend(),
    "triton": TritonBackend(),
    "torch": TorchBackend(),
    # The CUDA kernel played on the host: a testing tool, never an "auto" choice (cuda_host.py).
    "cuda-host": CudaHostBackend(),
}

# What "auto" tries, in order, for each device type; the torch backend takes everything else.
AUTO_ORDER = {"cpu": ("cpu",), "cuda": ("cuda", "triton")}
# The backends whose kernels step 8-bit moments (state_dtype="8bit").
EIGHT_BIT_BACKENDS = tuple(name for name, backend in BACKENDS.items() if backend.steps_eight_bit)
# What "auto" tries for 8-bit moments. On a GPU Triton first: its 8-bit step is measured on an H200 (1.28x torch fused
# fp32, README), the CUDA kernel's not yet; bench/gpu_check.sh times both, and the faster goes first once measured.
EIGHT_BIT_AUTO_ORDER = {**AUTO_ORDER, "cuda": ("triton", "cuda")}


def _refusal(name: str, p: torch.Tensor) -> str | None:
    """Why backend `name` cannot step `p`, or None. A DTensor is judged by its local shard, which is what a
    native backend steps (local_shards.py)."""
    local = local_shard(p)
    backend = BACKENDS[name]
    return backend.unavailable_reason() or backend.unsupported_reason(p if local is None else local)


def resolve(requested: str, p: torch.Tensor, where: str, eight_bit: bool = False) -> str:
    """The backend that steps `p`: the requested one (or an error saying why it cannot), or auto's pick (with
    `eight_bit` moments, the first of AUTO_ORDER that steps those)."""
    if requested != "auto":
        reason = _refusal(requested, p)
        if reason is not None:
            raise ValueError(f"backend={requested!r} cannot step {where}: {reason}. "
                             "Use backend='auto' to let fusedadam choose, or backend='torch'.")
        return requested
    order = (EIGHT_BIT_AUTO_ORDER if eight_bit else AUTO_ORDER).get(p.device.type, ())
    return next((name for name in order if _refusal(name, p) is None), "torch")


def native_refusal(p: torch.Tensor) -> str:
    """Why no native backend steps `p` here (for errors about options only native kernels run)."""
    reasons = [f"{name}: {_refusal(name, p)}" for name in AUTO_ORDER.get(p.device.type, ())
               if _refusal(name, p) is not None]
    return "; ".join(reasons) or f"there is no native backend for {p.device.type} tensors"


def make_runner(name: str, params, state_of, layout: StateLayout, sharded: bool) -> Runner:
    """The runner of one partition; `sharded` when its parameters are DTensors stepped on their local shards."""
    if sharded:
        return LocalShardRunner(BACKENDS[name], params, state_of, layout)
    return BACKENDS[name].make_runner(params, state_of, layout)


__all__ = ["AUTO_ORDER", "BACKENDS", "EIGHT_BIT_BACKENDS", "Backend", "Runner", "StateLayout", "StepConfig",
           "local_shard", "make_runner", "native_refusal", "resolve"]
