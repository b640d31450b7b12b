"""The `cuda-host` backend: the CUDA kernel's own code (csrc/cuda, compiled by nvcc for the host as well) played on
the CPU over CPU tensors, block by block and thread by thread, as a GPU would run its grid. A testing tool, like the
Triton interpreter: it gives the CUDA kernel's chunk walk, packs, tails, coefficient cache and epilogue a run in CI on
machines without a GPU. Never chosen by backend="auto", and slow (one element at a time, ~10-100 ns each).

The grid is shaped by the knobs below, which tests set: a GPU with SMS SMs holding BLOCKS_PER_SM blocks at a time
(persistent_grid_blocks, the formula the GPU launcher uses with the driver's numbers), blocks run in an order drawn
from ORDER_SEED, chunks of CHUNK_SIZE elements (with 8-bit moments a multiple of 256, the quantization block)."""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from .._native import native
from ..layout import kernel_unsupported_reason
from .base import StateLayout, StateOf
from .cuda import CHUNK_SIZE as GPU_CHUNK_SIZE
from .cuda import cuda_module_reason, kernel_arguments
from .device import DeviceRunner, Launch
from .native_table import DTYPE_CODES


@dataclass
class HostGrid:
    sms: int = 3
    blocks_per_sm: int = 2
    order_seed: int | None = None  # None: a new order at every launch
    chunk_size: int = GPU_CHUNK_SIZE


GRID = HostGrid()
_launches = itertools.count()
# The launcher's counts of the last launch (blocks, chunks, packed / scalar elements, ...): what tests read to see
# which paths a problem took.
last_tally: dict = {}


def _launch(launch: Launch) -> None:
    global last_tally
    seed = GRID.order_seed if GRID.order_seed is not None else next(_launches)
    last_tally = native().adam_step_cuda_host(device=-1, stream=0, **kernel_arguments(launch), sms=GRID.sms,
                                              blocks_per_sm=GRID.blocks_per_sm, order_seed=seed)


class CudaHostBackend:
    name = "cuda-host"
    steps_eight_bit = True  # the CUDA kernel's code: a warp per block of 8-bit moments, played a warp per call

    def unavailable_reason(self) -> str | None:
        return cuda_module_reason()

    def unsupported_reason(self, p: torch.Tensor) -> str | None:
        return kernel_unsupported_reason(p, self.name, ("cpu",), tuple(DTYPE_CODES))

    def make_runner(self, params, state_of: StateOf, layout: StateLayout) -> DeviceRunner:
        return DeviceRunner(params, state_of, layout, _launch, GRID.chunk_size)
