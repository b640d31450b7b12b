"""The `triton` backend: fusedadam.triton_kernels' one-launch multi-tensor kernel over the launch table.

It steps CUDA tensors, and CPU tensors when TRITON_INTERPRET=1 was set before triton was imported: that is
how CI, and anyone without a GPU, runs this backend through the public API."""
from __future__ import annotations

import functools
import importlib.util

import torch

from .._native import load_error, try_native
from ..occupancy import resident_blocks
from ..triton_kernels.interpreter import interpreting
from .base import StateLayout, StateOf
from ..layout import kernel_unsupported_reason
from .device import DeviceRunner, Launch

# On a GPU a chunk row is 16384 elements, stepped in pieces of BLOCK elements by NUM_WARPS warps: each thread moves 16
# bytes of the widest array per piece (4 elements beside any fp32 array, 8 when every array is 16-bit). Sixteen
# elements per thread took 224-255 registers and spilled with bf16 + master + AMSGrad; 8 beside fp32 arrays, 127-183.
# The interpreter pays per operation, not per element, so it takes the same chunks in fewer, wider pieces.
GPU_CHUNK_SIZE, NUM_WARPS = 16384, 8
# 8-bit moments: 4 elements a thread whatever the parameters' width. With 8, bf16 + stochastic rounding or Kahan +
# AMSGrad took 218-230 registers under Triton 3.6 (one program per SM); with 4, at most 128. On an H200 the 8-bit
# step reached only 60-63% of the probe (bench/NOTES.md): bench/eight_bit_sweep.py times other shapes of a piece.
EIGHT_BIT_ELEMENTS_PER_THREAD = 4
INTERPRETER_CHUNK_SIZE, INTERPRETER_BLOCK = 16384, 4096
TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)  # fp64 storage: the cpu and cuda backends

# The interpreter's grid: None runs one program per chunk; a number runs that many persistent programs, so the
# chunk walk of each (several chunks, tensor boundaries, the cached constants) runs as on a GPU. Tests set it.
INTERPRETER_PROGRAMS: int | None = None


def gpu_block(param_itemsize: int, state_itemsize: int, master_weights: bool) -> int:
    if state_itemsize == 1:
        return NUM_WARPS * 32 * EIGHT_BIT_ELEMENTS_PER_THREAD
    widest = max(param_itemsize, state_itemsize, 4 if master_weights else 0)
    return NUM_WARPS * 32 * (16 // widest)


@functools.lru_cache(maxsize=None)
def _device_properties(index: int) -> tuple[int, int]:
    properties = torch.cuda.get_device_properties(index)
    return properties.multi_processor_count, properties.major * 10 + properties.minor


_resident: dict[tuple, int] = {}  # programs per SM of each compiled specialization


def _launch(launch: Launch) -> None:
    from ..triton_kernels.multi_tensor_adam import launch_multi_tensor_adam

    if launch.table.device.type != "cuda":
        programs = launch.num_chunks if INTERPRETER_PROGRAMS is None else min(INTERPRETER_PROGRAMS, launch.num_chunks)
        launch_multi_tensor_adam(launch=launch, block=INTERPRETER_BLOCK, programs=programs)
        return
    index = launch.table.device.index
    sms, arch = _device_properties(index)
    block = gpu_block(launch.dtype.itemsize, launch.state_dtype.itemsize, launch.param_update == "master")
    key = (index, launch.dtype, launch.state_dtype, launch.param_update, launch.aligned16, launch.weight_decay_mode,
           launch.amsgrad, launch.maximize, launch.lr_tensor is None, launch.beta1_tensor is None,
           launch.beta2_tensor is None, launch.grad_scale is None, launch.found_inf is None, block, NUM_WARPS)
    # A persistent grid is as many programs as the SMs hold at once: known from the compiled kernel's registers after
    # its first launch (which takes 2 per SM, at worst a second wave of a few programs).
    programs = min(launch.num_chunks, sms * _resident.get(key, 2))
    with torch.cuda.device(launch.table.device):
        compiled = launch_multi_tensor_adam(launch=launch, block=block, programs=programs,
                                            num_warps=NUM_WARPS)
    if key not in _resident:
        registers = getattr(compiled, "n_regs", None)
        shared = getattr(getattr(compiled, "metadata", None), "shared", 0) or 0
        _resident[key] = max(1, resident_blocks(registers, NUM_WARPS * 32, arch, shared)) if registers else 2


class TritonBackend:
    name = "triton"
    steps_eight_bit = True

    def unavailable_reason(self) -> str | None:
        if importlib.util.find_spec("triton") is None:
            return "triton is not installed (pip install triton)"
        if try_native() is None:
            return f"the native module fusedadam._C, which builds its launch tables, is not built ({load_error()!r})"
        if not interpreting() and not torch.cuda.is_available():
            return "there is no CUDA GPU, and TRITON_INTERPRET=1 (Triton's CPU interpreter) is not set"
        return None

    def unsupported_reason(self, p: torch.Tensor) -> str | None:
        devices = ("cuda", "cpu") if interpreting() else ("cuda",)
        return kernel_unsupported_reason(p, self.name, devices, TRITON_DTYPES)

    def make_runner(self, params, state_of: StateOf, layout: StateLayout) -> DeviceRunner:
        chunk_size = GPU_CHUNK_SIZE if params[0].device.type == "cuda" else INTERPRETER_CHUNK_SIZE
        return DeviceRunner(params, state_of, layout, _launch, chunk_size)
