"""FusedAdam against torch.optim.Adam itself, not only against the float64 reference: every combination of weight
decay (none, L2, decoupled), AMSGrad and maximize; NaN and inf through every state; every hyperparameter changed
between steps; step hooks around the update. A slip written alike into the kernels and the reference (maximize
applied after L2 decay, say) passes the reference tests; it cannot pass these."""
import itertools
import math

import pytest
import torch

from fusedadam import FusedAdam
from specs import backend_params, require

SHAPES = [(7,), (33,), (5, 13)]
STATE_KEYS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")

COMBINATIONS = {
    f"{decay}{'-amsgrad' if amsgrad else ''}{'-maximize' if maximize else ''}":
        dict(weight_decay=0.0 if decay == "no-decay" else 0.3, decoupled_weight_decay=decay == "decoupled",
             amsgrad=amsgrad, maximize=maximize)
    for decay, amsgrad, maximize in itertools.product(("no-decay", "l2", "decoupled"), (False, True), (False, True))
}


def _twins(backend, device, **kwargs):
    gen = torch.Generator().manual_seed(11)
    values = [torch.randn(s, generator=gen) for s in SHAPES]
    mine = [v.clone().to(device).requires_grad_() for v in values]
    theirs = [v.clone().requires_grad_() for v in values]
    return mine, FusedAdam(mine, backend=backend, **kwargs), theirs, torch.optim.Adam(theirs, foreach=False, **kwargs)


def _set_grads(mine, theirs, step, transform=None):
    gen = torch.Generator().manual_seed(100 + step)
    for p, q in zip(mine, theirs):
        g = torch.randn(q.shape, generator=gen)
        if transform is not None:
            g = transform(g)
        p.grad, q.grad = g.to(p.device), g.clone()


def _assert_like_torch(mine, ours, theirs, torchs, rtol=1e-5, atol=1e-6, equal_nan=False):
    for i, (p, q) in enumerate(zip(mine, theirs)):
        torch.testing.assert_close(p.detach().cpu(), q.detach(), rtol=rtol, atol=atol, equal_nan=equal_nan,
                                   msg=lambda m: f"parameter {i}: {m}")
        for key in STATE_KEYS:
            assert (key in ours.state[p]) == (key in torchs.state[q]), key
            if key in torchs.state[q]:
                torch.testing.assert_close(ours.state[p][key].cpu(), torchs.state[q][key], rtol=rtol, atol=atol,
                                           equal_nan=equal_nan, msg=lambda m: f"state[{key!r}] of parameter {i}: {m}")
        assert float(ours.state[p]["step"]) == float(torchs.state[q]["step"])


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("combination", COMBINATIONS)
def test_every_mode_combination_steps_like_torch(backend, combination):
    require(backend)
    mine, ours, theirs, torchs = _twins(backend.name, backend.device, lr=0.1, **COMBINATIONS[combination])
    start = [q.detach().clone() for q in theirs]
    for step in range(4):
        _set_grads(mine, theirs, step)
        ours.step()
        torchs.step()
    _assert_like_torch(mine, ours, theirs, torchs)
    # the parameters moved: a comparison of things that stand still would prove nothing
    assert all((p.detach().cpu() - v).abs().max() > 0.1 for p, v in zip(mine, start))


NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("amsgrad", [False, True], ids=["adam", "amsgrad"])
@pytest.mark.parametrize("value", NON_FINITE, ids=list(NON_FINITE))
def test_nan_and_inf_gradients_go_through_every_state_like_torch(backend, amsgrad, value):
    """No GradScaler: a non-finite gradient is stepped, as torch steps it, and what it leaves in each state (NaN, inf,
    or finite again) is torch's, element by element, over the steps after it."""
    require(backend)
    mine, ours, theirs, torchs = _twins(backend.name, backend.device, lr=0.1, weight_decay=0.1, amsgrad=amsgrad)

    def poisoned(g):
        g.view(-1)[::3] = NON_FINITE[value]
        return g
    for step in range(4):
        _set_grads(mine, theirs, step, poisoned if step == 1 else None)
        ours.step()
        torchs.step()
        _assert_like_torch(mine, ours, theirs, torchs, equal_nan=True)
    assert any(not torch.isfinite(p).all() for p in mine)  # the poison did reach the parameters


CHANGES = {
    "lr": ("lr", 0.02),
    "betas": ("betas", (0.5, 0.8)),
    "eps": ("eps", 0.3),
    "weight_decay": ("weight_decay", 0.5),
    "weight_decay-off": ("weight_decay", 0.0),
    "decoupled_weight_decay": ("decoupled_weight_decay", True),
    "maximize": ("maximize", True),
    "amsgrad-off": ("amsgrad", False),
    "amsgrad-on": ("amsgrad", True),
}


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("change", CHANGES)
def test_a_hyperparameter_changed_between_steps_takes_effect_like_torch(backend, change):
    require(backend)
    key, value = CHANGES[change]
    start = dict(lr=0.1, weight_decay=0.2, amsgrad=change == "amsgrad-off")
    mine, ours, theirs, torchs = _twins(backend.name, backend.device, **start)
    for step in range(2):
        _set_grads(mine, theirs, step)
        ours.step()
        torchs.step()
    ours.param_groups[0][key] = value
    torchs.param_groups[0][key] = value
    outcomes = []
    for step in range(2, 4):
        _set_grads(mine, theirs, step)
        for optimizer in (ours, torchs):
            try:
                optimizer.step()
                outcomes.append(None)
            except Exception as error:  # noqa: BLE001 - its kind is compared
                outcomes.append(type(error))
        if outcomes[-2:] != [None, None]:
            # amsgrad turned on later: torch has no max_exp_avg_sq to read and fails; so must ours, changing nothing
            assert outcomes[-2] is not None and outcomes[-2] == outcomes[-1], outcomes
            return
    _assert_like_torch(mine, ours, theirs, torchs)


@pytest.mark.parametrize("backend", backend_params())
def test_step_hooks_see_the_parameters_before_and_after_the_update(backend):
    require(backend)
    mine, ours, theirs, torchs = _twins(backend.name, backend.device, lr=0.1)
    seen = {}
    def recorder(key, params):
        def hook(optimizer, args, kwargs):
            seen[key] = [p.detach().cpu().clone() for p in params]
        return hook
    for optimizer, params, name in ((ours, mine, "ours"), (torchs, theirs, "torch")):
        optimizer.register_step_pre_hook(recorder(f"{name}-pre", params))
        optimizer.register_step_post_hook(recorder(f"{name}-post", params))
    before = [p.detach().cpu().clone() for p in mine]
    _set_grads(mine, theirs, 0)
    ours.step()
    torchs.step()
    for was, pre, post, torch_post in zip(before, seen["ours-pre"], seen["ours-post"], seen["torch-post"]):
        assert torch.equal(pre, was)
        assert not torch.equal(post, was)
        torch.testing.assert_close(post, torch_post, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", backend_params())
def test_a_pre_hook_may_replace_the_step_arguments(backend):
    """torch's Optimizer contract: a step pre-hook returning (args, kwargs) replaces them (args begin with the
    optimizer itself); here the closure."""
    require(backend)
    mine, ours, theirs, torchs = _twins(backend.name, backend.device)
    results = []
    for optimizer in (ours, torchs):
        optimizer.register_step_pre_hook(lambda o, args, kwargs: ((o, lambda: torch.tensor(42.0)), {}))
        _set_grads(mine, theirs, 0)
        results.append(optimizer.step(lambda: torch.tensor(-1.0)))
    assert [r.item() for r in results] == [42.0, 42.0]
