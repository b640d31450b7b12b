"""Compares one step of a low-precision mode with its float64 emulation (fusedadam.reference.emulated_adam_step).

Each step is emulated from the state the kernel stored at the previous one, so a comparison sees only that
step's arithmetic: values stored in 16 bits must be the emulation's, except where fp32 arithmetic lands on the
other side of a rounding boundary (then one ulp away, and rare) or the result cancels to far below its
operands; values stored in fp32 or fp64 must be within a few ulps of the magnitudes they were computed from."""
from __future__ import annotations

import copy

import torch

from fusedadam.precision import COMPENSATION_KEY, MASTER_KEY, Precision
from fusedadam.reference import AdamConfig, EmulatedState

SIXTEEN_BIT = (torch.float16, torch.bfloat16)
# 16-bit results: the share that must equal the emulation bit for bit (the rest within one ulp).
EXACT_SHARE = 0.99


def emulated_state(p: torch.Tensor, state: dict, precision: Precision, amsgrad: bool) -> EmulatedState:
    """The kernel's stored state of `p`, as the emulation's starting point."""
    def f64(key):
        return state[key].detach().cpu().double() if key in state else None
    zeros = torch.zeros(p.shape, dtype=torch.float64)
    return EmulatedState(param=p.detach().cpu().double(), param_dtype=p.dtype, state_dtype=precision.state_dtype,
                         update=precision.update, exp_avg=f64("exp_avg"), exp_avg_sq=f64("exp_avg_sq"),
                         max_exp_avg_sq=f64("max_exp_avg_sq") if amsgrad else zeros, master=f64(MASTER_KEY),
                         compensation=f64(COMPENSATION_KEY), step=int(state["step"].item()))


def fresh_emulated_state(start: torch.Tensor, param_dtype: torch.dtype, precision: Precision) -> EmulatedState:
    """The emulation's starting point for a parameter starting at `start` that has no state yet: zero moments, the
    master copy (if the mode keeps one) equal to the parameter, no compensation carried."""
    start = start.detach().cpu().double()
    zeros = torch.zeros_like(start)
    return EmulatedState(param=start, param_dtype=param_dtype, state_dtype=precision.state_dtype,
                         update=precision.update, exp_avg=zeros, exp_avg_sq=zeros.clone(),
                         max_exp_avg_sq=zeros.clone(), master=start.clone() if precision.master else None,
                         compensation=zeros.clone() if precision.compensation else None)


def ulp(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The spacing of `dtype` at the magnitude of x (float64)."""
    info = torch.finfo(dtype)
    magnitude = x.abs().clamp_min(info.smallest_normal)
    return torch.exp2(torch.floor(torch.log2(magnitude))) * info.eps


def assert_stored_like(name: str, ours: torch.Tensor, emulated: torch.Tensor, dtype: torch.dtype,
                       operands: torch.Tensor, exact_share: float = EXACT_SHARE) -> None:
    """`ours` (storage dtype `dtype`) against the emulation; `operands`: per element, the magnitude of the terms
    the value was computed from (float64); `exact_share`: of 16-bit values, the share that must be bit-equal."""
    ours = ours.detach().cpu().double()
    assert ours.shape == emulated.shape, name
    if ours.numel() == 0:
        return
    errors = (ours - emulated).abs()
    if dtype in SIXTEEN_BIT:
        exact = (errors == 0).double().mean().item()
        assert exact >= exact_share, f"{name}: only {exact:.2%} of the {dtype} values equal the emulation's"
        # One ulp where the fp32 value lands on the other side of a rounding boundary, plus the fp32 error itself
        # where the result is tiny next to its operands (m = b1 * m + (1 - b1) * g cancelling).
        fp32_error = 8 * torch.finfo(torch.float32).eps * operands
        excess = errors - (ulp(torch.maximum(ours.abs(), emulated.abs()), dtype) + fp32_error)
        what = "one ulp plus the fp32 error of its operands"
    else:
        excess = errors - 8 * torch.finfo(dtype).eps * operands
        what = f"8 ulps of its operands"
    worst = int(excess.argmax())
    assert excess.flatten()[worst] <= 0, (
        f"{name} ({dtype}): element {worst} is {ours.flatten()[worst].item():.9e}, the emulation "
        f"{emulated.flatten()[worst].item():.9e}: more than {what} apart")


def operand_magnitudes(before: EmulatedState, after: EmulatedState, grad: torch.Tensor, cfg: AdamConfig) -> dict:
    """Per stored tensor, the magnitude of the terms its new value was computed from."""
    g = grad.detach().cpu().double().abs()
    p_before = (before.master if before.update == "master" else before.param).abs()
    if cfg.weight_decay and not cfg.decoupled_weight_decay:
        g = g + cfg.weight_decay * p_before
    p_after = after.master if after.update == "master" else after.param
    # As in harness.operand_scales: an error of the order of g in m moves the parameter by up to
    # lr * g / (sqrt(v_hat) + eps), large where v_hat is tiny next to g (g + wd * p cancelling).
    beta1, beta2 = (float(b) for b in cfg.betas)
    second_moment = after.max_exp_avg_sq if cfg.amsgrad else after.exp_avg_sq
    v_hat_sqrt = (second_moment.abs() / (1 - beta2 ** after.step)).sqrt()
    sensitivity = float(cfg.lr) * g / ((1 - beta1 ** after.step) * (v_hat_sqrt + cfg.eps))
    param = p_before + p_after.abs() + (p_after - p_before).abs() + sensitivity
    second = before.exp_avg_sq.abs() + g * g
    return {"param": param, "master": param, "exp_avg": before.exp_avg.abs() + g, "exp_avg_sq": second,
            "max_exp_avg_sq": second + before.max_exp_avg_sq.abs(), "compensation": param}


def step_through(params, optimizer, grads) -> None:
    """One optimizer step per entry of `grads` (a list of per-parameter gradients), each gradient a fresh copy."""
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g.clone()
        optimizer.step()


def resumed_from_checkpoint(fresh, grads, at: int = 2):
    """Steps `fresh()` (-> params, optimizer) through every step of `grads`; and a second `fresh()`, loaded with the
    first's parameters and state_dict() after `at` steps, through the rest. Returns both (params, optimizer) pairs;
    the loaded one is checked to hold every state tensor in the dtype the first one held when it was saved."""
    params, optimizer = fresh()
    step_through(params, optimizer, grads[:at])
    saved_state, saved_params = copy.deepcopy((optimizer.state_dict(), [p.detach().clone() for p in params]))
    dtypes = [{k: v.dtype for k, v in optimizer.state[p].items()} for p in params]
    step_through(params, optimizer, grads[at:])
    restored, loaded = fresh()
    with torch.no_grad():
        for p, value in zip(restored, saved_params):
            p.copy_(value)
    loaded.load_state_dict(saved_state)
    for p, saved_dtypes in zip(restored, dtypes):
        assert {k: v.dtype for k, v in loaded.state[p].items()} == saved_dtypes
    step_through(restored, loaded, grads[at:])
    return (params, optimizer), (restored, loaded)
