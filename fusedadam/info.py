"""What this installation can do: compiled kernels, hardware found, and what backend="auto" picks."""
from __future__ import annotations

import os

import torch

from . import __version__
from ._native import load_error, try_native
from .backends import AUTO_ORDER, BACKENDS, resolve
from .backends.cuda import coverage


def collect() -> dict:
    info: dict = {"fusedadam": __version__, "torch": torch.__version__}
    native = try_native()
    if native is None:
        info["native module"] = f"not built ({load_error()!r})"
    else:
        info["native module"] = native.__file__
        info["cpu ISA variants compiled"] = native.cpu_compiled_isas()
        try:
            info["cpu ISA selected here"] = native.cpu_selected_isa()
        except ValueError as error:  # FUSEDADAM_CPU_ISA names a variant this CPU cannot run
            info["cpu ISA selected here"] = f"none: {error}"
        info["cpu ISA runnable here"] = ", ".join(native.cpu_runnable_isas())
        if native.has_cuda:
            info["cuda archs compiled"] = native.cuda_compiled_archs()
            info["cuda kernels run on"] = coverage(native.cuda_compiled_archs().split())
            info["cuda runtime (static)"] = _cuda_version(native.cuda_runtime_version())
            driver = native.cuda_driver_version()
            info["cuda driver"] = _cuda_version(driver) if driver else "none found"
            try:
                count = native.cuda_device_count()
                info["cuda devices"] = ", ".join(native.cuda_device_name(i) for i in range(count)) or "none"
            except RuntimeError as error:
                info["cuda devices"] = f"none ({error})"
        else:
            info["cuda archs compiled"] = "no CUDA (built without nvcc or with FUSEDADAM_NO_CUDA=1)"
    try:
        import triton
        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = "not installed"
    info["TRITON_INTERPRET"] = os.environ.get("TRITON_INTERPRET", "unset")
    from .bench.implementations import IMPLEMENTATIONS
    for name, impl in IMPLEMENTATIONS.items():
        if impl.requires:
            info[f"peer {name}"] = impl.unavailable_reason(impl.devices[0]) or "installed (benchmarked when present)"
    for name, backend in BACKENDS.items():
        info[f"backend {name}"] = backend.unavailable_reason() or "available"
    info['backend="auto" on cpu float32'] = resolve("auto", torch.empty(1), "a cpu tensor")
    if torch.cuda.is_available():
        info['backend="auto" on cuda float32'] = resolve("auto", torch.empty(1, device="cuda"), "a cuda tensor")
    else:
        ready = [n for n in AUTO_ORDER["cuda"] if BACKENDS[n].unavailable_reason() is None]
        info['backend="auto" on cuda float32'] = f"{(ready or ['torch'])[0]} (no GPU visible here)"
    return info


def _cuda_version(code: int) -> str:
    return f"{code // 1000}.{code % 1000 // 10}"


def format_info(info: dict) -> str:
    width = max(map(len, info))
    return "\n".join(f"{key:<{width}}  {value}" for key, value in info.items())
