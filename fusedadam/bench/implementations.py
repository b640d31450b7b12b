"""The optimizers a benchmark compares: torch's Adam paths, fusedadam's backends, and peers when installed."""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Callable

import torch

from ..backends import BACKENDS, EIGHT_BIT_BACKENDS
from ..optimizer import FusedAdamW
from ..precision import precision_of, precision_unsupported_reason


@dataclass(frozen=True)
class Implementation:
    name: str
    make: Callable[..., torch.optim.Optimizer]  # make(params, amsgrad=...) -> something with .step()
    devices: tuple[str, ...]
    backend: str | None = None    # the fusedadam backend it runs, if any
    requires: str | None = None   # a module that must be importable (peers are detected, never required)
    by_default: tuple[str, ...] = ("cpu", "cuda")  # devices where a plain `bench` includes it
    note: str = ""
    precision: tuple[tuple[str, object], ...] = ()  # fusedadam's precision options (precision.py), as items

    def unavailable_reason(self, device: str) -> str | None:
        if device not in self.devices:
            return f"does not run on {device}"
        if self.requires and importlib.util.find_spec(self.requires) is None:
            return f"{self.requires} is not installed"
        return BACKENDS[self.backend].unavailable_reason() if self.backend else None

    def dtype_reason(self, dtype: torch.dtype) -> str | None:
        """Why this row would say nothing for parameters of `dtype` (the option cannot apply, or changes nothing)."""
        if not self.precision:
            return None
        options = dict(self.precision)
        reason = precision_unsupported_reason(options, torch.empty(0, dtype=dtype))
        if reason is None and precision_of(options, dtype, _LARGE).is_torchs(dtype):
            reason = f"its options change nothing for {dtype} parameters"
        return reason

    def bytes_moved(self, dtype: torch.dtype, amsgrad: bool, numels: tuple[int, ...] = ()) -> float:
        """Bytes one step moves per parameter of tensors of these sizes (default: one large tensor): p, g, m, v
        (vmax) as torch stores them, or as the options do (8-bit moments: codes and absmaxes, and the fp32 moments
        of tensors too small to quantize)."""
        return self._per_param(dtype, numels, lambda precision: precision.bytes_moved(dtype, amsgrad))

    def bytes_held(self, dtype: torch.dtype, amsgrad: bool, numels: tuple[int, ...] = ()) -> float:
        return self._per_param(dtype, numels, lambda precision: precision.bytes_held(dtype, amsgrad))

    def _per_param(self, dtype: torch.dtype, numels: tuple[int, ...], bytes_of) -> float:
        options = dict(self.precision)
        numels = tuple(numels) or (_LARGE,)
        return sum(bytes_of(precision_of(options, dtype, n)) * n for n in numels) / max(1, sum(numels))


# The size of a tensor that takes every storage option (8-bit moments start at 4096 elements).
_LARGE = 1 << 30


class _CompiledStep:
    """torch.compile'd AdamW: the first call compiles (warm-up), later calls run the generated kernels."""

    def __init__(self, params, **options):
        # A tensor lr keeps a scheduler's changes from recompiling, as torch's tutorial advises.
        self.optimizer = torch.optim.AdamW(params, lr=torch.tensor(1e-3), **options)
        self.step = torch.compile(self.optimizer.step)


def _peer(module: str, attribute: str, **kwargs):
    def make(params, **options):
        cls = getattr(importlib.import_module(module), attribute)
        return cls(params, lr=1e-3, weight_decay=1e-2, **kwargs, **options)
    return make


def _fusedadam(backend: str, devices: tuple[str, ...]) -> Implementation:
    return Implementation(f"fusedadam-{backend}", lambda ps, **o: FusedAdamW(ps, backend=backend, **o), devices, backend)


# The precision modes (precision.py) a benchmark can add as rows: `--impls fusedadam-cpu+master ...`.
PRECISION_MODES = {
    "master": dict(master_weights=True),
    "bf16-states": dict(state_dtype=torch.bfloat16),
    "stochastic": dict(rounding="stochastic"),
    "kahan": dict(kahan_summation=True),
    "8bit": dict(state_dtype="8bit"),
}
# Modes only some backends' kernels run (the others refuse them with a clear error).
MODE_BACKENDS = {"8bit": EIGHT_BIT_BACKENDS}


def _fusedadam_mode(backend: str, devices: tuple[str, ...], mode: str) -> Implementation:
    options = PRECISION_MODES[mode]
    return Implementation(f"fusedadam-{backend}+{mode}",
                          lambda ps, **o: FusedAdamW(ps, backend=backend, **options, **o), devices, backend,
                          by_default=(), precision=tuple(options.items()))


IMPLEMENTATIONS = {i.name: i for i in [
    Implementation("torch-forloop", lambda ps, **o: torch.optim.AdamW(ps, foreach=False, **o), ("cpu", "cuda")),
    Implementation("torch-foreach", lambda ps, **o: torch.optim.AdamW(ps, foreach=True, **o), ("cpu", "cuda")),
    Implementation("torch-fused", lambda ps, **o: torch.optim.AdamW(ps, fused=True, **o), ("cpu", "cuda")),
    Implementation("torch-compiled", _CompiledStep, ("cpu", "cuda"), by_default=("cuda",),
                   note="on the CPU, compiling one step takes minutes (130 s for resnet50 here): ask for it"),
    _fusedadam("cpu", ("cpu",)),
    _fusedadam("cuda", ("cuda",)),
    _fusedadam("triton", ("cuda",)),
    *[_fusedadam_mode(backend, devices, mode) for backend, devices in (("cpu", ("cpu",)), ("cuda", ("cuda",)),
                                                                        ("triton", ("cuda",)))
      for mode in PRECISION_MODES if backend in MODE_BACKENDS.get(mode, (backend,))],
    Implementation("deepspeed-cpuadam", _peer("deepspeed.ops.adam", "DeepSpeedCPUAdam", adamw_mode=True), ("cpu",),
                   requires="deepspeed"),
    Implementation("deepspeed-fusedadam", _peer("deepspeed.ops.adam", "FusedAdam", adam_w_mode=True), ("cuda",),
                   requires="deepspeed"),
    Implementation("apex-fusedadam", _peer("apex.optimizers", "FusedAdam", adam_w_mode=True), ("cuda",),
                   requires="apex"),
    # The 8-bit optimizers users run today (block-wise dynamic-tree maps): peers of fusedadam-*+8bit, asked for by name.
    Implementation("bitsandbytes-adamw8bit", _peer("bitsandbytes.optim", "AdamW8bit"), ("cpu", "cuda"),
                   requires="bitsandbytes", by_default=(), precision=tuple(PRECISION_MODES["8bit"].items())),
    Implementation("torchao-adamw8bit", _peer("torchao.optim", "AdamW8bit"), ("cpu", "cuda"), requires="torchao",
                   by_default=(), precision=tuple(PRECISION_MODES["8bit"].items())),
]}

BASELINE = "torch-fused"


def default_implementations(device: str) -> list[str]:
    return [name for name, impl in IMPLEMENTATIONS.items()
            if device in impl.by_default and impl.unavailable_reason(device) is None]
