"""The step as a torch.library custom op, so torch.compile traces optimizer.step() without a graph break
inside it: the compiled graph holds one `fusedadam::adam_step_` call per (backend, device, dtype) partition,
declared as mutating what it mutates, with a fake implementation for tracing.

Outside torch.compile the optimizer does not use it: eager steps keep their cached native tables, which
this functional form rebuilds on every call (O(tensors) host work, fine inside a compiled step)."""
from __future__ import annotations

from typing import Optional

import torch

from .backends import make_runner
from .backends.amp import AmpScaling
from .backends.base import StateLayout, StepConfig
from .precision import ABSMAX_KEYS, COMPENSATION_KEY, MASTER_KEY, Precision

_MUTATED = ("params", "grads", "exp_avgs", "exp_avg_sqs", "max_exp_avg_sqs", "masters", "compensations",
            "exp_avg_absmaxes", "exp_avg_sq_absmaxes", "max_exp_avg_sq_absmaxes", "steps")


@torch.library.custom_op("fusedadam::adam_step_", mutates_args=_MUTATED)
def adam_step_(params: list[torch.Tensor], grads: list[torch.Tensor], exp_avgs: list[torch.Tensor],
               exp_avg_sqs: list[torch.Tensor], max_exp_avg_sqs: list[torch.Tensor], masters: list[torch.Tensor],
               compensations: list[torch.Tensor], exp_avg_absmaxes: list[torch.Tensor],
               exp_avg_sq_absmaxes: list[torch.Tensor], max_exp_avg_sq_absmaxes: list[torch.Tensor],
               steps: list[torch.Tensor], lr: torch.Tensor, beta1: float, beta2: float, eps: float, weight_decay: float,
               amsgrad: bool, maximize: bool, decoupled_weight_decay: bool, backend: str, param_update: str,
               rounding_seed: int, salts: list[int], grad_scale: Optional[torch.Tensor],
               found_inf: Optional[torch.Tensor]) -> None:
    """One Adam step of `backend` over these tensors; `steps` are the 0-dim float32 counters (advanced),
    `grads` are only written when `grad_scale` is given (unscaled in place, GradScaler's contract). `masters` and
    `compensations` are given with those parameter updates (precision.py), the absmaxes with 8-bit moments (uint8
    codes), else empty; `rounding_seed` is the group's, as a signed 64-bit integer."""
    if not params:
        return
    states = [{"step": step, "exp_avg": m, "exp_avg_sq": v} for step, m, v in zip(steps, exp_avgs, exp_avg_sqs)]
    for key, tensors in (("max_exp_avg_sq", max_exp_avg_sqs), (MASTER_KEY, masters), (COMPENSATION_KEY, compensations),
                         (ABSMAX_KEYS["exp_avg"], exp_avg_absmaxes), (ABSMAX_KEYS["exp_avg_sq"], exp_avg_sq_absmaxes),
                         (ABSMAX_KEYS["max_exp_avg_sq"], max_exp_avg_sq_absmaxes)):
        for state, tensor in zip(states, tensors):
            state[key] = tensor
    originals = [dict(s) for s in states]
    by_id = {id(p): s for p, s in zip(params, states)}
    layout = StateLayout(amsgrad=amsgrad, precision=Precision(exp_avgs[0].dtype, param_update), salts=tuple(salts))
    runner = make_runner(backend, params, lambda p: by_id[id(p)], layout, sharded=False)
    runner.set_grads(grads)
    config = StepConfig(lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, decoupled_weight_decay=decoupled_weight_decay, foreach=None, fused=None,
                        capturable=False, rounding_seed=rounding_seed % 2**64)
    scaling = AmpScaling(grad_scale, found_inf) if grad_scale is not None or found_inf is not None else None
    runner.run(config, scaling)
    # The runner counted in its own buffer (and re-laid any state tensor whose strides differed from its
    # parameter's): hand the results back to the caller's tensors.
    for state, original in zip(states, originals):
        for key, tensor in original.items():
            if state[key] is not tensor:
                tensor.copy_(state[key])


@adam_step_.register_fake
def _(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, masters, compensations, exp_avg_absmaxes,
      exp_avg_sq_absmaxes, max_exp_avg_sq_absmaxes, steps, lr, beta1, beta2, eps, weight_decay, amsgrad, maximize,
      decoupled_weight_decay, backend, param_update, rounding_seed, salts, grad_scale, found_inf) -> None:
    return None
