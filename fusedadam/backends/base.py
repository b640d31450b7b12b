"""What every backend offers the optimizer: one runner per (device, dtype) partition of a param group."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import torch

from ..precision import Precision
from .amp import AmpScaling


@dataclass(frozen=True)
class StepConfig:
    """A param group's settings for one step, read once per step per group."""

    lr: float | torch.Tensor
    beta1: float | torch.Tensor
    beta2: float | torch.Tensor
    eps: float
    weight_decay: float
    amsgrad: bool
    maximize: bool
    decoupled_weight_decay: bool
    foreach: bool | None
    fused: bool | None
    capturable: bool
    rounding_seed: int = 0


@dataclass(frozen=True)
class StateLayout:
    """What a partition's state holds: amsgrad's extra moment, the storage of every tensor (precision.py), and
    each parameter's rounding salt (its index in the optimizer, so its stream of random bits is its own)."""

    amsgrad: bool
    precision: Precision
    salts: tuple[int, ...]


StateOf = Callable[[torch.Tensor], dict]


class Runner(Protocol):
    """Steps a fixed list of parameters whose optimizer state already exists."""

    def gather_grads(self) -> bool:
        """Reads this step's gradients; False when they no longer fit the cached plan (the optimizer then
        validates the group again and rebuilds). Modifies nothing the user can see."""

    def set_grads(self, grads: Sequence[torch.Tensor]) -> None:
        """Uses these (already validated) gradients for the next run instead of gathering."""

    def run(self, config: StepConfig, scaling: AmpScaling | None = None) -> None:
        """One Adam step over every tensor of the runner; with GradScaler's tensors (`scaling`), gradients are
        unscaled first, and a step with found_inf set changes nothing."""


class Backend(Protocol):
    name: str
    steps_eight_bit: bool  # whether its kernel steps 8-bit moments (state_dtype="8bit")

    def unavailable_reason(self) -> str | None:
        """Why this backend cannot run in this process, or None."""

    def unsupported_reason(self, p: torch.Tensor) -> str | None:
        """Why this backend cannot step this parameter, or None."""

    def make_runner(self, params: Sequence[torch.Tensor], state_of: StateOf, layout: StateLayout) -> Runner:
        ...
