"""Stepping one problem with the CUDA kernel played on the host (backend "cuda-host") and with the CPU kernel, and
comparing the two bit for bit: both evaluate the one per-element update of csrc/adam_math.h without contraction, so
any element the CUDA kernel steps twice, skips, or steps with another element's values or constants shows."""
from __future__ import annotations

import torch

from fusedadam import FusedAdam
from fusedadam.precision import ABSMAX_KEYS
from specs import BackendSpec

CUDA_HOST = BackendSpec("cuda-host", "cpu")
STATE_KEYS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")


def offset_view(n: int, dtype: torch.dtype, offset: int, values: torch.Tensor | None = None) -> torch.Tensor:
    """n elements starting `offset` elements into a fresh (aligned) buffer, whose other elements are NaN (0xA5 for
    integer dtypes: 8-bit codes)."""
    buffer = torch.full((n + offset + 8,), float("nan") if dtype.is_floating_point else 0xA5, dtype=dtype)
    view = buffer[offset:offset + n]
    view.copy_(values if values is not None else torch.randn(n, dtype=torch.float64).to(dtype))
    return view


def run_both(params_of, grads_of, steps=3, state_offsets=None, before_step=None, **options):
    """Steps the same problem with backend="cuda-host" and backend="cpu"; returns both optimizers' (params, states).
    params_of(backend) makes the parameters; grads_of(step, params) the gradients; state_offsets, if given, seeds
    each parameter's state with views at those element offsets (the moments start at zero, as torch's would);
    before_step(step, optimizer), if given, runs before each step, after the gradients are set."""
    results = []
    for backend in ("cuda-host", "cpu"):
        params = params_of(backend)
        optimizer = FusedAdam(params, backend=backend, **options)
        if state_offsets is not None:
            for p, offset in zip(params, state_offsets):
                zeros = torch.zeros(p.numel(), dtype=p.dtype)
                optimizer.state[p] = {"step": torch.tensor(0.0),
                                      "exp_avg": offset_view(p.numel(), p.dtype, offset, zeros),
                                      "exp_avg_sq": offset_view(p.numel(), p.dtype, offset, zeros)}
                if options.get("amsgrad"):
                    optimizer.state[p]["max_exp_avg_sq"] = offset_view(p.numel(), p.dtype, offset, zeros)
        for step in range(steps):
            for p, g in zip(params, grads_of(step, params)):
                p.grad = g
            if before_step is not None:
                before_step(step, optimizer)
            optimizer.step()
        results.append((params, [optimizer.state[p] for p in params]))
    return results


def assert_bit_equal(ours, cpu):
    """Every parameter, moment (8-bit codes and absmaxes included), master copy, compensation and step count of the
    two runs of run_both, bit for bit."""
    (params, states), (cpu_params, cpu_states) = ours, cpu
    for i, (p, q, s, t) in enumerate(zip(params, cpu_params, states, cpu_states)):
        assert torch.equal(p.view(-1).view(torch.uint8), q.view(-1).view(torch.uint8)), f"parameter {i}"
        for key in STATE_KEYS + tuple(ABSMAX_KEYS.values()) + ("master_param", "kahan_compensation"):
            if key in t:
                assert torch.equal(s[key].reshape(-1).view(torch.uint8), t[key].reshape(-1).view(torch.uint8)), \
                    f"{key} of parameter {i}"
        assert torch.equal(s["step"], t["step"]), f"step of parameter {i}"


def fixed_problem(shapes, dtype, steps=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    initial = [torch.randn(s, dtype=torch.float64, generator=generator).to(dtype) for s in shapes]
    grads = [[torch.randn(s, dtype=torch.float64, generator=generator).to(dtype) for s in shapes] for _ in range(steps)]
    return (lambda backend: [p.clone() for p in initial]), (lambda step, params: [g.clone() for g in grads[step]])
