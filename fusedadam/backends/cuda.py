"""The `cuda` backend: the native multi-tensor CUDA kernel (csrc/cuda), one launch per partition per step on
torch's current stream, over the launch table that the device runner keeps in device memory."""
from __future__ import annotations

import functools

import torch

from .._native import load_error, native, try_native
from ..precision import PARAM_UPDATE_CODES
from .base import StateLayout, StateOf
from ..layout import kernel_unsupported_reason
from .device import DeviceRunner, Launch
from .native_table import DTYPE_CODES, STATE_DTYPE_CODES

CHUNK_SIZE = 16384  # elements per chunk row: a few 16-byte accesses per thread of a 256-thread block
CUDA_DTYPES = tuple(DTYPE_CODES)  # every storage dtype of the native tables


def _pointer(t: torch.Tensor | None) -> int:
    return 0 if t is None else t.data_ptr()


def kernel_arguments(launch: Launch) -> dict:
    """The arguments of the native adam_step_cuda (and of adam_step_cuda_host, which plays the same kernel)."""
    return dict(
        table=launch.table.data_ptr(), num_tensors=launch.num_tensors, num_chunks=launch.num_chunks,
        chunk_size=launch.chunk_size, dtype=DTYPE_CODES[launch.dtype],
        state_dtype=STATE_DTYPE_CODES[launch.state_dtype],
        param_update=PARAM_UPDATE_CODES[launch.param_update], steps=launch.steps.data_ptr(),
        done_counter=launch.done_counter.data_ptr(), lr=launch.lr, lr_on_device=_pointer(launch.lr_tensor),
        beta1=launch.beta1, beta2=launch.beta2, beta1_on_device=_pointer(launch.beta1_tensor),
        beta2_on_device=_pointer(launch.beta2_tensor), eps=launch.eps, weight_decay=launch.weight_decay,
        weight_decay_mode=launch.weight_decay_mode, amsgrad=launch.amsgrad, maximize=launch.maximize,
        seed=launch.rounding_seed, grad_scale=_pointer(launch.grad_scale), found_inf=_pointer(launch.found_inf))


def _launch(launch: Launch) -> None:
    device = launch.table.device
    native().adam_step_cuda(device=device.index, stream=torch.cuda.current_stream(device).cuda_stream,
                            **kernel_arguments(launch))


def runs_on(capability: int, compiled: list[str]) -> bool:
    """Whether a module built for `compiled` archs ("sm_80", "compute_90", ...) has a kernel for a GPU of this
    compute capability (86 for 8.6): a cubin of the same major version and an equal or lower minor, or PTX of an
    equal or lower version, which the driver compiles at load."""
    cubins = [int(a[3:]) for a in compiled if a.startswith("sm_")]
    ptx = [int(a[8:]) for a in compiled if a.startswith("compute_")]
    return any(c // 10 == capability // 10 and c <= capability for c in cubins) or any(p <= capability for p in ptx)


def coverage(compiled: list[str]) -> str:
    """The GPUs a build runs on, in words."""
    cubins = sorted(int(a[3:]) for a in compiled if a.startswith("sm_"))
    ptx = sorted(int(a[8:]) for a in compiled if a.startswith("compute_"))
    parts = [f"{c // 10}.{c % 10}-{c // 10}.x (sm_{c})" for c in cubins]
    if ptx:
        parts.append(f"{ptx[0] // 10}.{ptx[0] % 10} and newer through compute_{ptx[0]} PTX")
    return "; ".join(parts) or "none"


@functools.lru_cache(maxsize=None)
def _missing_kernel_reason(index: int) -> str | None:
    """Why the module has no kernel this GPU can run (no cubin for its arch, no PTX it can JIT), or None."""
    major, minor = torch.cuda.get_device_capability(index)
    compiled = native().cuda_compiled_archs().split()
    if runs_on(major * 10 + minor, compiled):
        return None
    return (f"fusedadam was built for {' '.join(compiled)}, not for this GPU (sm_{major}{minor}); rebuild with "
            f"FUSEDADAM_CUDA_ARCHS={major}{minor}")


def cuda_module_reason() -> str | None:
    """Why the native module has no CUDA kernels to run (not built, or built without CUDA), or None."""
    module = try_native()
    if module is None:
        return f"the native module fusedadam._C is not built ({load_error()!r})"
    if not module.has_cuda:
        return "fusedadam was built without CUDA (nvcc was not found or FUSEDADAM_NO_CUDA=1)"
    return None


class CudaBackend:
    name = "cuda"
    steps_eight_bit = True  # csrc/cuda/adam_kernel_8bit.cuh

    def unavailable_reason(self) -> str | None:
        reason = cuda_module_reason()
        if reason is None and not torch.cuda.is_available():
            reason = "torch sees no CUDA GPU"
        return reason

    def unsupported_reason(self, p: torch.Tensor) -> str | None:
        reason = kernel_unsupported_reason(p, self.name, ("cuda",), CUDA_DTYPES)
        if reason is None:
            reason = _missing_kernel_reason(p.device.index if p.device.index is not None else 0)
        return reason

    def make_runner(self, params, state_of: StateOf, layout: StateLayout) -> DeviceRunner:
        return DeviceRunner(params, state_of, layout, _launch, CHUNK_SIZE)
