"""The optimizers a benchmark compares: torch's three Adam paths and fusedadam's backends."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..backends import BACKENDS
from ..optimizer import FusedAdamW


@dataclass(frozen=True)
class Implementation:
    name: str
    make: Callable[[list[torch.Tensor]], torch.optim.Optimizer]
    devices: tuple[str, ...]
    backend: str | None = None  # the fusedadam backend it runs, if any

    def unavailable_reason(self, device: str) -> str | None:
        if device not in self.devices:
            return f"does not run on {device}"
        return BACKENDS[self.backend].unavailable_reason() if self.backend else None


def _fusedadam(backend: str, devices: tuple[str, ...]) -> Implementation:
    return Implementation(f"fusedadam-{backend}", lambda ps: FusedAdamW(ps, backend=backend), devices, backend)


IMPLEMENTATIONS = {i.name: i for i in [
    Implementation("torch-forloop", lambda ps: torch.optim.AdamW(ps, foreach=False), ("cpu", "cuda")),
    Implementation("torch-foreach", lambda ps: torch.optim.AdamW(ps, foreach=True), ("cpu", "cuda")),
    Implementation("torch-fused", lambda ps: torch.optim.AdamW(ps, fused=True), ("cpu", "cuda")),
    _fusedadam("cpu", ("cpu",)),
    _fusedadam("cuda", ("cuda",)),
    _fusedadam("triton", ("cuda",)),
] if i.backend is None or BACKENDS[i.backend].shipped}

BASELINE = "torch-fused"
