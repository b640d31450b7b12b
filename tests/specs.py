"""The test matrix, declared once: backends, dtypes, optimizer modes and shape classes.

A backend joins every correctness test by being listed in BACKEND_SPECS (with the storage dtypes it steps);
one that needs hardware missing here (a CUDA GPU) is skipped with the reason.
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from fusedadam._native import try_native
from fusedadam.backends import BACKENDS as REGISTRY
from fusedadam.backends.triton_backend import TRITON_DTYPES
from fusedadam.reference import AdamConfig


ALL_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


@dataclass(frozen=True)
class BackendSpec:
    name: str
    device: str
    dtypes: tuple = ALL_DTYPES  # the storage dtypes the backend steps (others are rejected, see test_errors)
    # The Triton interpreter costs ~3 ms per chunk whatever its size, so a shape class of thousands of tensors
    # is cut to its first `max_tensors` there: still several launches' worth for torch's fused kernel (36).
    max_tensors: int | None = None
    # The CPU kernel's ISA variant (FUSEDADAM_CPU_ISA, set for the test by conftest.py); None: the one picked here.
    cpu_isa: str | None = None

    def fit(self, shapes: list) -> list:
        return shapes if self.max_tensors is None else shapes[:self.max_tensors]

    def skip_reason(self) -> str | None:
        if self.device == "cuda" and not torch.cuda.is_available():
            return "no CUDA GPU on this machine"
        return REGISTRY[self.name].unavailable_reason()

    @property
    def id(self) -> str:
        return f"{self.name}-{self.device}" + (f"-isa-{self.cpu_isa}" if self.cpu_isa else "")


BACKEND_SPECS = [
    BackendSpec("cpu", "cpu"),
    BackendSpec("torch", "cpu"),
    # The Triton interpreter (TRITON_INTERPRET=1, set in conftest.py) runs the same kernel on the CPU.
    BackendSpec("triton", "cpu", dtypes=TRITON_DTYPES, max_tensors=100),
    # The CUDA kernel's own code, played on the CPU block by block and thread by thread (backends/cuda_host.py).
    BackendSpec("cuda-host", "cpu"),
    BackendSpec("cuda", "cuda"),
    BackendSpec("triton", "cuda", dtypes=TRITON_DTYPES),
]


def _marks(spec: BackendSpec):
    return [pytest.mark.gpu] if spec.device == "cuda" else []


def other_cpu_isas() -> list[str]:
    """The CPU kernel's ISA variants this CPU runs besides the one it picks (csrc/cpu/cpu_isa.h)."""
    native = try_native()
    return [] if native is None else list(native.cpu_runnable_isas())[1:]


def backend_params(cpu_isas: bool = False):
    """Every backend; with cpu_isas, the CPU kernel again under each other ISA variant this CPU runs (the tests of
    exact rounding, where each variant's own conversions must hold)."""
    specs = BACKEND_SPECS + ([BackendSpec("cpu", "cpu", cpu_isa=isa) for isa in other_cpu_isas()] if cpu_isas else [])
    return [pytest.param(s, id=s.id, marks=_marks(s)) for s in specs]


def backend_dtype_params(dtypes: dict[str, torch.dtype]):
    """(backend, dtype) pairs for every dtype of `dtypes` the backend steps."""
    return [pytest.param(s, dtype, id=f"{s.id}-{name}", marks=_marks(s))
            for s in BACKEND_SPECS for name, dtype in dtypes.items() if dtype in s.dtypes]


def require(spec: BackendSpec) -> None:
    reason = spec.skip_reason()
    if reason is not None:
        pytest.skip(f"backend {spec.name!r} cannot run here: {reason}")


DTYPES = {"fp32": torch.float32, "fp64": torch.float64, "bf16": torch.bfloat16, "fp16": torch.float16}

MODES = {
    "adam": AdamConfig(),
    "adam-l2": AdamConfig(weight_decay=0.1),
    "adamw": AdamConfig(weight_decay=0.1, decoupled_weight_decay=True),
    "amsgrad": AdamConfig(amsgrad=True, weight_decay=0.05),
    "maximize": AdamConfig(maximize=True),
    "adamw-amsgrad-maximize": AdamConfig(weight_decay=0.2, decoupled_weight_decay=True, amsgrad=True, maximize=True),
    "other-betas-eps": AdamConfig(lr=0.05, betas=(0.5, 0.7), eps=1e-3),
    "beta1-zero": AdamConfig(lr=0.01, betas=(0.0, 0.99)),
}

SHAPES = {
    "empty": [(0,)],
    "empty-last": [(5,), (3, 4), (0,)],
    "one": [(1,)],
    "odd": [(7,), (33,), (1001,), (17, 19)],
    "larger-than-a-thread-slice": [(100_003,), (70_001,)],
    "thousands": [(int(n),) for n in torch.randint(1, 65, (3000,), generator=torch.Generator().manual_seed(7))],
}

# The shape class of thousands of tensors is there for the launch table (many chunks, many launches for torch's own
# kernel); a mode changes the arithmetic of each element, which every other shape class checks, and, with amsgrad, the
# number of arrays a tensor brings to the table. So it runs under one mode of each array count, not under all eight:
# each of its tests costs ~2 s of Python per step on 3000 tensors, which was half of test_correctness.
MODES_FOR_THOUSANDS = ("adam", "adamw-amsgrad-maximize")


def mode_shape_params():
    """(mode, shapes) pairs, with ids "<mode>-<shape class>": every mode on every shape class but "thousands"."""
    return [pytest.param(mode, shapes, id=f"{mode_name}-{shape_name}")
            for mode_name, mode in MODES.items() for shape_name, shapes in SHAPES.items()
            if shape_name != "thousands" or mode_name in MODES_FOR_THOUSANDS]
