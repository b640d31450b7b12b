"""Sharded parameters (DTensor: FSDP2's fully_shard, tensor parallelism) stepped by a native backend on each
rank's local shard. Adam is elementwise, so stepping the local shards of p, g, m, v is the whole step: no
communication. The state stays DTensors, as torch.optim.Adam keeps it, so state_dict() and
torch.distributed.checkpoint see torch's format; an empty local shard (uneven sharding) is just a tensor of
0 elements."""
from __future__ import annotations

import functools
from typing import Sequence

import torch

from ..precision import ABSMAX_KEYS
from ..quantization import num_blocks
from .amp import AmpScaling
from .base import Backend, StateLayout, StateOf, StepConfig


@functools.cache
def dtensor_type():
    """torch.distributed.tensor.DTensor, or None where torch has no distributed support."""
    if not torch.distributed.is_available():
        return None
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:
        return None
    return DTensor


def local_shard(p: torch.Tensor) -> torch.Tensor | None:
    """The rank's local tensor of a DTensor, or None for any other tensor."""
    cls = dtensor_type()
    return p.to_local() if cls is not None and isinstance(p, cls) else None


def kernel_absmax(absmax: torch.Tensor, local_numel: int) -> torch.Tensor:
    """What a kernel reads for a (local) 8-bit moment of local_numel elements (layout: sharded_absmax.py): a contiguous
    fp32 view of its blocks' absmaxes, one per block, in the storage of `absmax`, so the kernel's writes land in the
    state."""
    row = local_shard(absmax)
    if row is None:
        return absmax
    blocks = num_blocks(local_numel)
    if row.numel() < blocks or not row.is_contiguous():
        raise RuntimeError(f"fusedadam: a local absmax of {tuple(row.shape)} cannot hold the {blocks} blocks of a "
                           f"local shard of {local_numel} elements")
    return row.view(-1)[:blocks]


def _local_state(value: torch.Tensor, key: str, local_param: torch.Tensor) -> torch.Tensor:
    """The local tensor a kernel steps for state `key`: the local shard, or, for an 8-bit moment's absmax, the blocks
    of this rank's shard (sharded_absmax.py)."""
    if key in ABSMAX_KEYS.values():
        return kernel_absmax(value, local_param.numel())
    return local_shard(value)


class LocalShardRunner:
    """Wraps a backend's runner built over the local shards. Each step the gradients' local shards are
    handed to it (DTensor gradients have no address of their own for the native gather to read)."""

    def __init__(self, backend: Backend, params: Sequence[torch.Tensor], state_of: StateOf, layout: StateLayout):
        self._params = list(params)
        self._locals = [local_shard(p) for p in self._params]
        keys = layout.precision.state_keys(layout.amsgrad)
        states = [state_of(p) for p in self._params]
        local_states = {id(local): {"step": s["step"], **{k: _local_state(s[k], k, local) for k in keys}}
                        for local, s in zip(self._locals, states)}
        self._runner = backend.make_runner(self._locals, lambda local: local_states[id(local)], layout)
        for local, s in zip(self._locals, states):
            built = local_states[id(local)]
            s["step"] = built["step"]  # a view into the runner's counters, as for plain parameters
            for key in keys:
                if built[key].data_ptr() != local_shard(s[key]).data_ptr():  # the runner re-laid a state tensor
                    _local_state(s[key], key, local).copy_(built[key])
                    raise RuntimeError(f"fusedadam: the local shard of {key} is laid out unlike its parameter's")

    @property
    def captured(self) -> bool:
        return getattr(self._runner, "captured", False)

    def gather_grads(self) -> bool:
        grads = []
        for p, local in zip(self._params, self._locals):
            grad = p.grad
            if grad is None or type(grad) is not type(p) or grad.placements != p.placements:
                return False
            local_grad = grad.to_local()
            if local_grad.shape != local.shape or local_grad.dtype != local.dtype:
                return False
            grads.append(local_grad)
        self._runner.set_grads(grads)
        return True

    def set_grads(self, grads: Sequence[torch.Tensor]) -> None:
        self._runner.set_grads([local_shard(g) if local_shard(g) is not None else g for g in grads])

    def run(self, config: StepConfig, scaling: AmpScaling | None = None) -> None:
        self._runner.run(config, scaling)
