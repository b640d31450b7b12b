"""Runs the same random problem through fusedadam, torch.optim.Adam and the float64 reference, and compares."""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from fusedadam import FusedAdam
from fusedadam.reference import AdamConfig, EmulatedState, ReferenceState, emulated_adam_step, reference_adam_step
from precision_harness import assert_stored_like, operand_magnitudes

STATE_KEYS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")


@dataclass
class Problem:
    """Initial parameters and the gradients of every step, all in the storage dtype."""

    params: list[torch.Tensor]
    grads: list[list[torch.Tensor]]  # [step][param]


def make_problem(shapes, dtype, device="cpu", steps=4, seed=None) -> Problem:
    rng = torch.Generator().manual_seed(seed) if seed is not None else None

    def draw(shape, scale=1.0):
        return (torch.randn(shape, dtype=torch.float64, generator=rng) * scale).to(dtype=dtype, device=device)

    params = [draw(s) for s in shapes]
    # Gradient scales vary per tensor and per step, so v spans orders of magnitude and eps matters somewhere.
    grads = [[draw(s, scale=10.0 ** float(torch.empty(()).uniform_(-3, 1, generator=rng))) for s in shapes]
             for _ in range(steps)]
    return Problem(params, grads)


def run_optimizer(make_optimizer, problem: Problem):
    """Steps a fresh copy of the parameters; returns (params, state per param). Every step gets new gradient
    objects, as a training loop with zero_grad(set_to_none=True) does."""
    params = [p.clone() for p in problem.params]
    optimizer = make_optimizer(params)
    for step_grads in problem.grads:
        for p, g in zip(params, step_grads):
            p.grad = g.clone()
        optimizer.step()
    return params, [optimizer.state[p] for p in params]


def run_fusedadam(problem: Problem, cfg: AdamConfig, backend: str, **extra):
    return run_optimizer(lambda ps: FusedAdam(ps, backend=backend, **cfg.torch_kwargs(), **extra), problem)


def run_torch(problem: Problem, cfg: AdamConfig, **extra):
    return run_optimizer(lambda ps: torch.optim.Adam(ps, **cfg.torch_kwargs(), **extra), problem)


def flattened(problem: Problem) -> Problem:
    """The problem's tensors concatenated into one, on the CPU. Adam is elementwise, so the reference (and the operand
    scales) of the concatenation, split again, are each tensor's own: one call per step instead of one per tensor
    and step (3000 tensors took ~3.5 s a test)."""
    def cat(tensors):
        return torch.cat([t.detach().cpu().reshape(-1) for t in tensors]) if tensors else torch.empty(0)
    return Problem([cat(problem.params)], [[cat(step)] for step in problem.grads])


def split_like(flat: torch.Tensor, like: list[torch.Tensor]) -> list[torch.Tensor]:
    return [part.view(t.shape) for part, t in zip(flat.split([t.numel() for t in like]), like)]


def run_reference(problem: Problem, cfg: AdamConfig) -> list[ReferenceState]:
    state = ReferenceState.fresh(flattened(problem).params[0])
    for step_grads in flattened(problem).grads:
        reference_adam_step(state, step_grads[0], cfg)
    parts = [split_like(getattr(state, key), problem.params)
             for key in ("param", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")]
    return [ReferenceState(*tensors, step=state.step) for tensors in zip(*parts)]


def tensors_of(params, states, cfg: AdamConfig):
    """name -> tensor for the parameter and every state tensor the mode keeps."""
    out = []
    for p, s in zip(params, states):
        named = {"param": p, "exp_avg": s["exp_avg"], "exp_avg_sq": s["exp_avg_sq"]}
        if cfg.amsgrad:
            named["max_exp_avg_sq"] = s["max_exp_avg_sq"]
        out.append(named)
    return out


def reference_tensors(states: list[ReferenceState], cfg: AdamConfig):
    out = []
    for s in states:
        named = {"param": s.param, "exp_avg": s.exp_avg, "exp_avg_sq": s.exp_avg_sq}
        if cfg.amsgrad:
            named["max_exp_avg_sq"] = s.max_exp_avg_sq
        out.append(named)
    return out


def max_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    if expected.numel() == 0:
        return 0.0
    return (actual.detach().cpu().double() - expected).abs().max().item()


def scale_of(expected: torch.Tensor) -> float:
    return expected.abs().max().item() if expected.numel() else 0.0


# fp32 and fp64 storage: the error of every element, relative to the magnitude of the operands that formed it.
RELATIVE_TOLERANCE = {torch.float32: 1e-6, torch.float64: 1e-12}


def operand_scales(problem: Problem, cfg: AdamConfig):
    """Per element, the magnitude of the terms each final value was computed from, accumulated over the
    steps by re-running the reference. Rounding error is relative to these, not to the result: g + wd*p,
    b1*m + (1-b1)*g and p - update can all cancel to nearly zero.
      G_t, the gradient operands of step t: |g_t| (+ wd * |p_{t-1}| with L2 decay);
      exp_avg: max_t G_t;  exp_avg_sq, max_exp_avg_sq: their value plus (1-b2) (max_t G_t)^2;
      param: max_t |p_t| plus, per step, lr * G_t / (sqrt(v_hat_t) + eps): the update's sensitivity to an
      error of the order of G_t in m_t (large where v_hat_t is tiny next to G_t, e.g. a cancelled g + wd*p).
    With L2 decay the parameter's own error flows back into the next gradient, so G grows by wd * param."""
    beta1, beta2 = (float(b) for b in cfg.betas)
    lr = float(cfg.lr)
    coupled_decay = cfg.weight_decay if not cfg.decoupled_weight_decay else 0.0
    scales = []
    flat = flattened(problem)
    for i, p0 in enumerate(flat.params):
        state = ReferenceState.fresh(p0.cpu())
        p_bound = state.param.abs()
        grad_bound = torch.zeros_like(p_bound)
        sensitivity = torch.zeros_like(p_bound)
        for t, step_grads in enumerate(flat.grads, start=1):
            g = step_grads[i].detach().cpu().double()
            grad_t = g.abs() + coupled_decay * state.param.abs()
            reference_adam_step(state, g, cfg)
            v_hat_sqrt = (state.exp_avg_sq / (1 - beta2 ** t)).sqrt()
            grad_bound = torch.maximum(grad_bound, grad_t)
            sensitivity = sensitivity + lr * grad_bound / ((1 - beta1 ** t) * (v_hat_sqrt + cfg.eps))
            p_bound = torch.maximum(p_bound, state.param.abs())
        param = p_bound + lr + sensitivity
        grad_bound = grad_bound + coupled_decay * param
        named = {
            "param": param,
            "exp_avg": torch.maximum(state.exp_avg.abs(), grad_bound),
            "exp_avg_sq": state.exp_avg_sq.abs() + (1 - beta2) * grad_bound ** 2,
        }
        if cfg.amsgrad:
            named["max_exp_avg_sq"] = state.max_exp_avg_sq.abs() + (1 - beta2) * grad_bound ** 2
        scales.append(named)
    parts = {key: split_like(value, problem.params) for key, value in scales[0].items()}
    return [dict(zip(parts, tensors)) for tensors in zip(*parts.values())]


def run_fusedadam_against_emulation(problem: Problem, cfg: AdamConfig, backend: str, given: AdamConfig | None = None):
    """16-bit storage: run_fusedadam, checking after every step that each stored value is what the float64 emulation
    of that step (fusedadam.reference.emulated_adam_step), started from what the kernel stored before it, stores:
    bit-equal but for the rare element where fp32 arithmetic lands on the other side of a rounding boundary
    (precision_harness.assert_stored_like). The problem's tensors are compared as one concatenation (Adam is
    elementwise): one emulation per step, and the share of bit-equal values pooled over the problem. `given`: the
    optimizer's arguments where they are not `cfg`'s values as such (tensors)."""
    params = [p.clone() for p in problem.params]
    optimizer = FusedAdam(params, backend=backend, **(given or cfg).torch_kwargs())
    keys = ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if cfg.amsgrad else ())
    dtype = params[0].dtype

    def concatenated(tensors):
        return torch.cat([t.detach().cpu().double().reshape(-1) for t in tensors])

    for step_grads in problem.grads:
        for p, g in zip(params, step_grads):
            p.grad = g.clone()
        states = [optimizer.state[p] for p in params]
        zeros = torch.zeros(sum(p.numel() for p in params), dtype=torch.float64)
        stored = {key: concatenated([s[key] for s in states]) if states[0] else zeros.clone() for key in keys}
        before = EmulatedState(param=concatenated(params), param_dtype=dtype, state_dtype=dtype, update="nearest",
                               exp_avg=stored["exp_avg"], exp_avg_sq=stored["exp_avg_sq"],
                               max_exp_avg_sq=stored.get("max_exp_avg_sq", zeros),
                               step=int(states[0]["step"].item()) if states[0] else 0)
        optimizer.step()
        grad = concatenated(step_grads)
        after = copy.deepcopy(before)
        emulated_adam_step(after, grad, cfg)
        operands = operand_magnitudes(before, after, grad, cfg)
        step = f"step {after.step}: "
        assert_stored_like(step + "param", concatenated(params), after.param, dtype, operands["param"])
        for key in keys:
            assert_stored_like(step + key, concatenated([optimizer.state[p][key] for p in params]),
                               getattr(after, key), dtype, operands[key])
    return params, [optimizer.state[p] for p in params]


def assert_close_to_reference(ours, reference, dtype, scales):
    """fp32/fp64: every element within RELATIVE_TOLERANCE of its operands' magnitude (see operand_scales) of the
    float64 reference. (16-bit storage is compared with its emulation: run_fusedadam_against_emulation.)"""
    assert dtype in RELATIVE_TOLERANCE, f"{dtype}: compare 16-bit storage with run_fusedadam_against_emulation"
    _assert_elementwise(ours, reference, dtype, scales)


def assert_as_accurate_as_torch(ours, reference, torch_result, dtype):
    """Where torch is the subject: for each kind of tensor (param, exp_avg, ...), our worst error against the
    float64 reference, relative to its tensor's scale, over all tensors of the problem, is at most twice torch's
    fused kernel's on the same inputs plus half the ulp 16-bit storage costs. (Pooled over the problem because the
    max over one small tensor is too noisy to compare.)"""
    half_ulp = torch.finfo(dtype).eps / 2
    for key in reference[0]:
        def worst(results):
            ratios = [(max_error(r[key], ref[key]) / scale_of(ref[key]), i)
                      for i, (r, ref) in enumerate(zip(results, reference)) if scale_of(ref[key]) > 0]
            return max(ratios, default=(0.0, -1))
        mine, i = worst(ours)
        theirs, j = worst(torch_result)
        assert mine <= 2 * theirs + half_ulp, (
            f"{key} ({dtype}): worst relative error {mine:.3e} (tensor {i}) > 2 x torch's {theirs:.3e} (tensor {j}) "
            f"+ half an ulp {half_ulp:.3e}")


def _assert_elementwise(ours, reference, dtype, scales):
    for i, (mine, ref) in enumerate(zip(ours, reference)):
        for key, expected in ref.items():
            assert mine[key].shape == expected.shape
            if expected.numel() == 0:
                continue
            errors = (mine[key].detach().cpu().double() - expected).abs()
            excess = errors - RELATIVE_TOLERANCE[dtype] * scales[i][key]
            worst = int(excess.argmax())
            assert excess.flatten()[worst] <= 0, (
                f"tensor {i} {key} ({tuple(expected.shape)}, {dtype}): element {worst} is off by "
                f"{errors.flatten()[worst].item():.3e}, more than {RELATIVE_TOLERANCE[dtype]:g} x its operand "
                f"scale {scales[i][key].flatten()[worst].item():.3e} (expected {expected.flatten()[worst].item():.6e})")
