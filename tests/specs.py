"""The test matrix, declared once: backends, dtypes, optimizer modes and shape classes.

A backend joins every correctness test by being listed in BACKENDS; one whose kernel this version
does not ship is left out, one that needs hardware missing here is skipped with the reason.
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from fusedadam.backends import BACKENDS as REGISTRY
from fusedadam.reference import AdamConfig


@dataclass(frozen=True)
class BackendSpec:
    name: str
    device: str

    def skip_reason(self) -> str | None:
        if self.device == "cuda" and not torch.cuda.is_available():
            return "no CUDA GPU on this machine"
        return REGISTRY[self.name].unavailable_reason()

    @property
    def id(self) -> str:
        return f"{self.name}-{self.device}"


BACKEND_SPECS = [s for s in [
    BackendSpec("cpu", "cpu"),
    BackendSpec("torch", "cpu"),
    BackendSpec("cuda", "cuda"),
    BackendSpec("triton", "cuda"),
] if REGISTRY[s.name].shipped]


def backend_params():
    return [pytest.param(s, id=s.id, marks=[pytest.mark.gpu] if s.device == "cuda" else []) for s in BACKEND_SPECS]


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
