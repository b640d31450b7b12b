"""The `cpu` backend: the native multi-tensor kernel, one call per (device, dtype) partition per step."""
from __future__ import annotations

from typing import Sequence

import torch

from .._native import load_error, native, try_native
from ..profiling import profiler_range
from ..layout import kernel_unsupported_reason
from .amp import AmpScaling, unscale_on_host
from .base import StateLayout, StateOf, StepConfig
from .native_table import DTYPE_CODES, PartitionTable, gather_steps

# How the native calls appear in a torch.profiler trace (python -m fusedadam profile reads these).
GATHER_RANGE = "fusedadam::gather_grads"
KERNEL_RANGE = "fusedadam::adam_step_cpu"

# csrc/adam_math.h WeightDecay.
WEIGHT_DECAY_NONE, WEIGHT_DECAY_L2, WEIGHT_DECAY_DECOUPLED = 0, 1, 2


def weight_decay_mode(config: StepConfig) -> int:
    if config.weight_decay == 0:
        return WEIGHT_DECAY_NONE
    return WEIGHT_DECAY_DECOUPLED if config.decoupled_weight_decay else WEIGHT_DECAY_L2


class CpuRunner:
    """One native call per step for the whole partition; the table is built once per plan."""

    def __init__(self, params: Sequence[torch.Tensor], state_of: StateOf, layout: StateLayout):
        states = [state_of(p) for p in params]
        # The counters keep torch's dtype: float32, or float64 where torch made them so (under
        # torch.set_default_dtype(torch.float64)); a partition holding both counts in float64, which loses nothing.
        dtype = torch.float64 if any(s["step"].dtype == torch.float64 for s in states) else torch.float32
        self._table = PartitionTable(params, states, layout, gather_steps(states, torch.device("cpu"), dtype))

    def gather_grads(self) -> bool:
        with profiler_range(GATHER_RANGE):
            return self._table.gather_grads()

    def set_grads(self, grads: Sequence[torch.Tensor]) -> None:
        self._table.set_grads(grads)

    def run(self, config: StepConfig, scaling: AmpScaling | None = None) -> None:
        if scaling is not None and not unscale_on_host(self._table.grads(), scaling):
            return
        with profiler_range(KERNEL_RANGE):
            native().adam_step_cpu(
                self._table.native,
                float(config.lr),
                float(config.beta1),
                float(config.beta2),
                config.eps,
                config.weight_decay,
                weight_decay_mode(config),
                config.amsgrad,
                config.maximize,
                config.rounding_seed,
                torch.get_num_threads(),
            )


class CpuBackend:
    name = "cpu"
    steps_eight_bit = True

    def unavailable_reason(self) -> str | None:
        if try_native() is None:
            return f"the native module fusedadam._C is not built ({load_error()!r})"
        return None

    def unsupported_reason(self, p: torch.Tensor) -> str | None:
        return kernel_unsupported_reason(p, self.name, ("cpu",), tuple(DTYPE_CODES))

    def make_runner(self, params, state_of: StateOf, layout: StateLayout) -> CpuRunner:
        return CpuRunner(params, state_of, layout)
