"""The host kernels' step is IEEE arithmetic, bit for bit: every operation of csrc/adam_math.h rounded once, in its
order, in the parameter's precision (fp32, or fp64 for fp64 parameters), exactly as numpy's operations on arrays
of that dtype compute it.

The tolerance tests (against torch.optim.Adam and the float64 reference) cannot see one ulp. These can: a square
root or a division that is close but not correctly rounded (a reciprocal multiplied without its correction, an
approximate root, a quotient that overflows where IEEE's does not) changes bits here. Each step is replayed from the
state the kernel stored before it, so a comparison sees that step's arithmetic alone. The data spans the range:
gradients from 1e-22 to 1e22 (1e-160 to 1e160 in fp64), whose squares underflow to subnormals or overflow to inf
while exp_avg stays finite; parameters small enough that the update's last bits reach them; and divisors
sqrt(1 - beta2^t) of several steps and betas.

Only the host-compiled kernels are held to this: the GPU kernels contract a*b + c into FMAs (setup.py, as torch's
own CUDA kernels do), which rounds once where this replay rounds twice."""
import math

import numpy as np
import pytest
import torch

from fusedadam import FusedAdam
from fusedadam.reference import AdamConfig
from specs import backend_params, require

DTYPES = {"fp32": torch.float32, "fp64": torch.float64}
HOST_PATHS = [pytest.param(p.values[0], dtype, id=f"{p.id}-{name}") for p in backend_params(cpu_isas=True)
              for name, dtype in DTYPES.items()
              if p.values[0].device == "cpu" and p.values[0].name != "torch" and dtype in p.values[0].dtypes]
CONFIGS = {
    "adam": AdamConfig(lr=0.5),
    "adam-l2-maximize": AdamConfig(lr=0.5, betas=(0.5, 0.8), weight_decay=0.3, maximize=True),
    "adamw-amsgrad": AdamConfig(lr=0.5, betas=(0.0, 0.95), eps=1e-6, weight_decay=0.1,
                                decoupled_weight_decay=True, amsgrad=True),
    "amsgrad-slow-beta2": AdamConfig(lr=2.0, betas=(0.9, 0.9999), eps=0.0, amsgrad=True),
}
NUMEL = 20_000
STEPS = 4
# Gradients up to 10^k: their squares overflow (and the smallest underflow) in the dtype.
GRADIENT_DECADES = {torch.float32: 22, torch.float64: 160}


def _power(beta: float, step: int) -> float:
    """beta^step as make_adam_coefficients computes it in double: exp2(step * log2(beta)), 0 for beta = 0."""
    return 0.0 if beta == 0.0 else math.exp2(step * math.log2(beta))


def _replayed_step(p, g, m, v, vmax, cfg: AdamConfig, step: int):
    """adam_update (csrc/adam_math.h) with each operation a numpy operation in p's dtype (numpy's square root is the
    hardware's, correctly rounded; torch's CPU sqrt is not: it differs from it on ~0.7% of fp32 values); constants
    rounded from double as make_adam_coefficients rounds them."""
    p, g, m, v, vmax = (t.numpy() for t in (p, g, m, v, vmax))
    constant = p.dtype.type
    beta1, beta2 = cfg.betas
    bias_correction1 = 1.0 - _power(beta1, step)
    bias_correction2 = 1.0 - _power(beta2, step)
    with np.errstate(all="ignore"):
        if cfg.maximize:
            g = -g
        if cfg.weight_decay != 0.0 and not cfg.decoupled_weight_decay:
            g = g + constant(cfg.weight_decay) * p
        if cfg.weight_decay != 0.0 and cfg.decoupled_weight_decay:
            p = p * constant(1.0 - cfg.lr * cfg.weight_decay)
        m = constant(beta1) * m + constant(1.0 - beta1) * g
        v = constant(beta2) * v + constant(1.0 - beta2) * g * g
        if cfg.amsgrad:
            vmax = np.maximum(vmax, v)
        root = np.sqrt(vmax if cfg.amsgrad else v)
        denom = root / constant(math.sqrt(bias_correction2)) + constant(cfg.eps)
        p = p - constant(cfg.lr / bias_correction1) * (m / denom)
    return tuple(torch.from_numpy(np.asarray(t)) for t in (p, m, v, vmax))


def _spanning(gen: torch.Generator, low: int, high: int, dtype: torch.dtype) -> torch.Tensor:
    """Normal values scaled by 10^k, k uniform in [low, high]: every binade between, both signs."""
    exponents = torch.randint(low, high + 1, (NUMEL,), generator=gen).double()
    return (torch.randn(NUMEL, generator=gen, dtype=torch.float64) * 10.0 ** exponents).to(dtype)


def _assert_same_bits(got: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    """Equal bits, except that any NaN equals any NaN (payloads are the hardware's choice)."""
    both_nan = got.isnan() & expected.isnan()
    differs = (got.view(torch.int64 if got.dtype == torch.float64 else torch.int32)
               != expected.view(torch.int64 if expected.dtype == torch.float64 else torch.int32)) & ~both_nan
    if differs.any():
        first = int(differs.nonzero()[0])
        raise AssertionError(f"{what}: {int(differs.sum())} of {got.numel()} elements differ, first at {first}: "
                             f"{got[first].item()!r} != {expected[first].item()!r}")


# The gradients overflow on purpose; the Triton interpreter's numpy says so.
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("backend, dtype", HOST_PATHS)
def test_each_step_is_ieee_arithmetic_in_adam_maths_order(backend, dtype, config):
    require(backend)
    cfg = CONFIGS[config]
    gen = torch.Generator().manual_seed(5)
    param = _spanning(gen, -6, 1, dtype).requires_grad_()
    optimizer = FusedAdam([param], backend=backend.name, **cfg.torch_kwargs())
    keys = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    overflowed = 0
    for step in range(1, STEPS + 1):
        param.grad = _spanning(gen, -GRADIENT_DECADES[dtype], GRADIENT_DECADES[dtype], dtype)
        state = optimizer.state[param]
        before = [param.detach().clone()] + [state[k].clone() if k in state else torch.zeros_like(param.detach())
                                             for k in keys]
        optimizer.step()
        expected = _replayed_step(*before[:1], param.grad, *before[1:], cfg, step)
        _assert_same_bits(param.detach(), expected[0], f"step {step}: the parameter")
        for key, value in zip(keys, expected[1:]):
            if key in state:
                _assert_same_bits(state[key], value, f"step {step}: state[{key!r}]")
        overflowed += int((state["exp_avg_sq"].isinf() & state["exp_avg"].isfinite()).sum())
    # the data reached what it is meant to: moments whose square overflowed next to a finite first moment
    assert overflowed > 0
