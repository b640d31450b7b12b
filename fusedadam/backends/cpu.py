"""The `cpu` backend: the native multi-tensor kernel, one call per (device, dtype) partition per step."""
from __future__ import annotations

from typing import Sequence

import torch

from .._native import load_error, native, try_native
from ..profiling import profiler_range
from ..layout import is_dense
from .base import StateOf, StepConfig

# Codes of csrc/tensor_table.h DType.
DTYPE_CODES = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}

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
    """Holds the native table of one partition: p, m, v, vmax and step addresses are fixed at build time;
    each step only the gradients are gathered (in C++, with every check that can change between steps)."""

    def __init__(self, params: Sequence[torch.Tensor], state_of: StateOf, amsgrad: bool):
        self._params = list(params)
        states = [state_of(p) for p in self._params]
        for p, s in zip(self._params, states):
            _match_layout(p, s, amsgrad)
        # All step counters of the partition in one float32 buffer, each state['step'] a 0-dim view of it:
        # the kernel advances them all without a Python loop, and the state stays torch's format.
        self._steps = torch.tensor([float(s["step"]) for s in states], dtype=torch.float32)
        for i, s in enumerate(states):
            s["step"] = self._steps[i]
        base = self._steps.data_ptr()
        dtype = self._params[0].dtype
        self._table = native().TensorTable(
            dtype=DTYPE_CODES[dtype],
            numels=[p.numel() for p in self._params],
            params=[p.data_ptr() for p in self._params],
            exp_avgs=[s["exp_avg"].data_ptr() for s in states],
            exp_avg_sqs=[s["exp_avg_sq"].data_ptr() for s in states],
            max_exp_avg_sqs=[s["max_exp_avg_sq"].data_ptr() for s in states] if amsgrad else [],
            steps=[base + 4 * i for i in range(len(states))],
            param_objects=self._params,
            param_strides=[p.stride() for p in self._params],
            param_contiguous=[p.is_contiguous() for p in self._params],
            torch_dtype=dtype,
            strided_layout=torch.strided,
            tensor_base=torch._C.TensorBase,
        )
        # Everything the table points to stays alive as long as the table: even if a user swaps a state
        # tensor or a parameter's storage behind the optimizer's back, the kernel never writes freed memory.
        self._pointees = [s[key] for s in states for key in _state_keys(amsgrad)]
        self._pointees += [p.untyped_storage() for p in self._params]
        self._grads: Sequence[torch.Tensor] = ()  # substituted gradients, see set_grads

    def gather_grads(self) -> bool:
        self._grads = ()
        with profiler_range(GATHER_RANGE):
            return self._table.gather_grads() < 0

    def set_grads(self, grads: Sequence[torch.Tensor]) -> None:
        grads = [g if g.stride() == p.stride() else torch.empty_like(p).copy_(g) for p, g in zip(self._params, grads)]
        self._table.set_grads([g.data_ptr() for g in grads])
        self._grads = grads

    def run(self, config: StepConfig) -> None:
        with profiler_range(KERNEL_RANGE):
            self._launch(config)

    def _launch(self, config: StepConfig) -> None:
        native().adam_step_cpu(
            self._table,
            float(config.lr),
            float(config.beta1),
            float(config.beta2),
            config.eps,
            config.weight_decay,
            weight_decay_mode(config),
            config.amsgrad,
            config.maximize,
            torch.get_num_threads(),
        )


def _state_keys(amsgrad: bool) -> tuple[str, ...]:
    return ("exp_avg", "exp_avg_sq", "max_exp_avg_sq") if amsgrad else ("exp_avg", "exp_avg_sq")


def _match_layout(p: torch.Tensor, state: dict, amsgrad: bool) -> None:
    """Gives each state tensor the parameter's strides (a loaded checkpoint may hold contiguous copies of a
    transposed parameter's state), keeping the values."""
    for key in _state_keys(amsgrad):
        value = state[key]
        if value.stride() != p.stride():
            state[key] = torch.empty_like(p).copy_(value)


class CpuBackend:
    name = "cpu"
    shipped = True

    def unavailable_reason(self) -> str | None:
        if try_native() is None:
            return f"the native module fusedadam._C is not built ({load_error()!r})"
        return None

    def unsupported_reason(self, p: torch.Tensor) -> str | None:
        if p.device.type != "cpu":
            return f"it is on {p.device}, and the cpu backend only steps CPU tensors"
        if p.dtype not in DTYPE_CODES:
            return f"its dtype {p.dtype} is not one of float32, float64, float16, bfloat16"
        if type(p) not in (torch.Tensor, torch.nn.Parameter):
            return f"it is a tensor subclass ({type(p).__name__})"
        if not is_dense(p):
            return "it is a view whose elements are not one dense block (e.g. a slice with a step)"
        return None

    def make_runner(self, params, state_of: StateOf, amsgrad: bool) -> CpuRunner:
        return CpuRunner(params, state_of, amsgrad)
