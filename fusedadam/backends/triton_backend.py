"""The `triton` backend: fusedadam.triton_kernels' one-launch multi-tensor kernel over the launch table.

It steps CUDA tensors, and CPU tensors when TRITON_INTERPRET=1 was set before triton was imported: that is
how CI, and anyone without a GPU, runs this backend through the public API."""
from __future__ import annotations

import functools
import importlib.util

import torch

from .._native import load_error, try_native
from ..triton_kernels.interpreter import interpreting
from .base import StateLayout, StateOf
from ..layout import kernel_unsupported_reason
from .device import DeviceRunner, Launch

# Work per chunk row, per loop iteration of a program, and programs per SM. On a GPU a chunk is a few
# iterations of 16-byte accesses per thread; the interpreter pays per operation, not per element, so it
# gets the same chunks in fewer, wider pieces.
GPU_CHUNK_SIZE, GPU_BLOCK, PROGRAMS_PER_SM = 16384, 2048, 8
INTERPRETER_CHUNK_SIZE, INTERPRETER_BLOCK = 16384, 4096
TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)  # fp64 storage: the cpu and cuda backends


@functools.lru_cache(maxsize=None)
def _sm_count(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def _launch(launch: Launch) -> None:
    from ..triton_kernels.multi_tensor_adam import launch_multi_tensor_adam

    on_gpu = launch.table.device.type == "cuda"
    programs = launch.num_chunks
    if on_gpu:
        programs = min(programs, _sm_count(launch.table.device.index) * PROGRAMS_PER_SM)
        with torch.cuda.device(launch.table.device):
            launch_multi_tensor_adam(launch=launch, block=GPU_BLOCK, programs=programs)
    else:
        launch_multi_tensor_adam(launch=launch, block=INTERPRETER_BLOCK, programs=programs)


class TritonBackend:
    name = "triton"

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
