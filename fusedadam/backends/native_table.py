"""The native TensorTable of one partition, as the cpu and device backends build it."""
from __future__ import annotations

from typing import Sequence

import torch

from .._native import native
from ..precision import ABSMAX_KEYS, CODES_DTYPE, PARAM_UPDATE_CODES
from .base import StateLayout

# Codes of csrc/tensor_table.h DType.
DTYPE_CODES = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}
# ... and DType::kMoment8Bit, the 8-bit codes (precision.CODES_DTYPE), a state dtype only.
STATE_DTYPE_CODES = {**DTYPE_CODES, CODES_DTYPE: 4}


def match_layout(p: torch.Tensor, state: dict, keys: Sequence[str]) -> None:
    """Gives each state tensor the parameter's strides (a loaded checkpoint may hold contiguous copies of a
    transposed parameter's state), keeping the values and dtype."""
    for key in keys:
        value = state[key]
        if value.stride() != p.stride():
            state[key] = torch.empty_like(p, dtype=value.dtype).copy_(value)


def gather_steps(states: Sequence[dict], device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """All step counters of a partition in one buffer of `dtype` on `device`, each state["step"] becoming a 0-dim
    view of it: a kernel advances them all at once, and the state keeps torch's format."""
    steps = torch.stack([torch.as_tensor(s["step"]).detach().reshape(()).to(device, dtype) for s in states])
    for i, s in enumerate(states):
        s["step"] = steps[i]
    return steps


class PartitionTable:
    """A partition's native table: p, m, v, vmax and step addresses fixed at build time; each step only the
    gradients are gathered (in C++, with every check that can change between steps). Everything the table
    points to stays alive with it: even if a user swaps a state tensor or a parameter's storage behind the
    optimizer's back, no kernel writes freed memory."""

    def __init__(self, params: Sequence[torch.Tensor], states: Sequence[dict], layout: StateLayout,
                 steps: torch.Tensor):
        self.params = list(params)
        keys = layout.precision.state_keys(layout.amsgrad)
        absmax_keys = [ABSMAX_KEYS[key] for key in layout.precision.moment_keys(layout.amsgrad)]
        for p, s in zip(self.params, states):
            match_layout(p, s, [key for key in keys if key not in absmax_keys])
        dtype = self.params[0].dtype
        precision = layout.precision

        def addresses(key: str, wanted: bool) -> list[int]:
            return [s[key].data_ptr() for s in states] if wanted else []

        self.native = native().TensorTable(
            dtype=DTYPE_CODES[dtype],
            state_dtype=STATE_DTYPE_CODES[precision.state_dtype],
            param_update=PARAM_UPDATE_CODES[precision.update],
            step_is_double=steps.dtype == torch.float64,
            numels=[p.numel() for p in self.params],
            params=[p.data_ptr() for p in self.params],
            exp_avgs=addresses("exp_avg", True),
            exp_avg_sqs=addresses("exp_avg_sq", True),
            max_exp_avg_sqs=addresses("max_exp_avg_sq", layout.amsgrad),
            masters=addresses("master_param", precision.master),
            compensations=addresses("kahan_compensation", precision.compensation),
            exp_avg_absmaxes=addresses(ABSMAX_KEYS["exp_avg"], precision.quantized),
            exp_avg_sq_absmaxes=addresses(ABSMAX_KEYS["exp_avg_sq"], precision.quantized),
            max_exp_avg_sq_absmaxes=addresses(ABSMAX_KEYS["max_exp_avg_sq"], precision.quantized and layout.amsgrad),
            salts=[salt % 2**32 for salt in layout.salts],
            steps=[steps.data_ptr() + steps.element_size() * i for i in range(len(states))],
            param_objects=self.params,
            param_shapes=[tuple(p.shape) for p in self.params],
            param_strides=[p.stride() for p in self.params],
            param_contiguous=[p.is_contiguous() for p in self.params],
            torch_dtype=dtype,
            strided_layout=torch.strided,
            tensor_base=torch._C.TensorBase,
        )
        # The storages, not only the tensors: set_ or .data = on a state tensor or a parameter gives the tensor other
        # storage, and the table's addresses must stay allocated until the next step re-plans.
        self._pointees = [s[key] for s in states for key in keys] + [s[key].untyped_storage() for s in states for key in keys]
        self._pointees += [p.untyped_storage() for p in self.params] + [steps]
        self._substituted: Sequence[torch.Tensor] = ()

    def gather_grads(self) -> bool:
        self._substituted = ()
        return self.native.gather_grads() < 0

    def set_grads(self, grads: Sequence[torch.Tensor]) -> None:
        """Uses these gradients (a gradient laid out unlike its parameter is copied into the parameter's
        layout first) and keeps them alive until the next gather."""
        grads = [g if g.stride() == p.stride() else torch.empty_like(p).copy_(g) for p, g in zip(self.params, grads)]
        self.native.set_grads([g.data_ptr() for g in grads])
        self._substituted = grads

    def grads(self) -> list[torch.Tensor]:
        """This step's gradient tensors (for host-side GradScaler handling)."""
        return list(self._substituted) if self._substituted else [p.grad for p in self.params]
