"""8-bit moments of DTensor parameters (FSDP2's fully_shard, tensor parallelism), stepped on each rank's local shard.

The codes are a DTensor like the parameter. The absmaxes are not: a block is 256 elements of one rank's local shard
in memory order (the kernel steps the shard alone, with no communication), so each rank holds the absmaxes of its own
shard's blocks. They form a DTensor of one row per shard, shape (shards, blocks of the largest shard), placed
Shard(0) on the mesh dimension that shards the parameter and Replicate on the others; a row is zero past its own
shard's blocks (uneven sharding, an empty shard). torch.distributed.checkpoint saves and loads that like any DTensor.
On a mesh that shards the parameter otherwise the absmax's shape differs and the load is refused: an 8-bit block
belongs to the shard it was taken from.

Plain tensors take the plain functions of quantization.py; every function here accepts both."""
from __future__ import annotations

import torch

from .backends.local_shards import kernel_absmax, local_shard
from .quantization import FloatMap, dequantize_moment, num_blocks, quantize_moment


def unsupported_reason(p: torch.Tensor) -> str | None:
    """Why p's placements cannot hold 8-bit moments, or None (a plain tensor, or at most one sharded mesh dimension
    and no pending reduction)."""
    if local_shard(p) is None:
        return None
    if any(placement.is_partial() for placement in p.placements):
        return f"its placements {p.placements} hold a pending reduction (Partial)"
    if sum(placement.is_shard() for placement in p.placements) > 1:
        return (f"its placements {p.placements} shard it over more than one mesh dimension; 8-bit moments take one "
                "sharded dimension (FSDP2, HSDP)")
    return None


def absmax_shape(p: torch.Tensor) -> tuple[int, ...]:
    """The shape of each 8-bit moment's absmax tensor for parameter p: (blocks,) for a plain tensor; (shards, blocks
    of the largest local shard) for a DTensor, computed from the global shape alone, so every rank agrees."""
    if local_shard(p) is None:
        return (num_blocks(p.numel()),)
    for mesh_dim, placement in enumerate(p.placements):
        if placement.is_shard():
            shards, size = p.device_mesh.size(mesh_dim), p.shape[placement.dim]
            # torch.chunk's split, which DTensor's Shard follows: the first shards have ceil(size / shards) slices.
            largest = -(-size // shards) * (p.numel() // size) if size else 0
            return (shards, num_blocks(largest))
    return (1, num_blocks(p.numel()))


def _absmax_placements(p: torch.Tensor) -> list:
    from torch.distributed.tensor import Replicate, Shard

    return [Shard(0) if placement.is_shard() else Replicate() for placement in p.placements]


def absmax_placement_mismatch(p: torch.Tensor, absmax: torch.Tensor) -> str | None:
    """What is wrong with how absmax is laid out across ranks for parameter p (shapes aside), or None."""
    sharded_p, sharded_absmax = local_shard(p) is not None, local_shard(absmax) is not None
    if sharded_p != sharded_absmax:
        return (f"is {'a DTensor' if sharded_absmax else 'a plain tensor'} and its parameter "
                f"{'is a DTensor' if sharded_p else 'is not'}; each rank's absmaxes belong to its own local shard")
    if sharded_p and (absmax.device_mesh != p.device_mesh or list(absmax.placements) != _absmax_placements(p)):
        return (f"is placed {absmax.placements} on {absmax.device_mesh}, not {tuple(_absmax_placements(p))} on the "
                f"parameter's mesh: one row per local shard")
    return None


def zero_absmax(p: torch.Tensor) -> torch.Tensor:
    """A fresh absmax tensor for one 8-bit moment of p: zeros (an all-zero block's absmax)."""
    local = local_shard(p)
    shape = absmax_shape(p)
    if local is None:
        return torch.zeros(shape, dtype=torch.float32, device=p.device)
    from torch.distributed.tensor import DTensor

    row = torch.zeros((1, shape[1]), dtype=torch.float32, device=local.device)
    return DTensor.from_local(row, p.device_mesh, _absmax_placements(p), run_check=False, shape=torch.Size(shape),
                              stride=(shape[1], 1))


def quantize_moment_of(p: torch.Tensor, x: torch.Tensor, fmap: FloatMap) -> tuple[torch.Tensor, torch.Tensor]:
    """(codes, absmax) of moment x of parameter p (both DTensors, or both plain): for a DTensor, each rank quantizes
    its own local shard."""
    local = local_shard(p)
    if local is None:
        return quantize_moment(x, fmap)
    from torch.distributed.tensor import DTensor

    local_x = local_shard(x)
    if local_x is None or x.placements != p.placements:
        raise RuntimeError(f"fusedadam: a moment of a DTensor parameter placed {p.placements} must be a DTensor placed "
                           f"the same way, got {type(x).__name__} {getattr(x, 'placements', '')}")
    local_codes, local_absmax = quantize_moment(local_x, fmap)
    codes = DTensor.from_local(local_codes, p.device_mesh, p.placements, run_check=False, shape=p.shape,
                               stride=p.stride())
    absmax = zero_absmax(p)
    kernel_absmax(absmax, local.numel()).copy_(local_absmax)
    return codes, absmax


def dequantize_moment_of(codes: torch.Tensor, absmax: torch.Tensor, fmap: FloatMap) -> torch.Tensor:
    """The fp32 moment that 8-bit state stands for, a DTensor placed as its codes when they are one."""
    local_codes = local_shard(codes)
    if local_codes is None:
        return dequantize_moment(codes, absmax, fmap)
    from torch.distributed.tensor import DTensor

    values = dequantize_moment(local_codes, kernel_absmax(absmax, local_codes.numel()), fmap)
    return DTensor.from_local(values, codes.device_mesh, codes.placements, run_check=False, shape=codes.shape,
                              stride=codes.stride())
