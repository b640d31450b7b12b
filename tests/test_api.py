"""FusedAdam / FusedAdamW as drop-in replacements: the same constructor, state, state_dict and behaviour
as torch.optim.Adam / AdamW in everything a training script touches."""
import copy
import inspect
import pickle

import pytest
import torch

from fusedadam import FusedAdam, FusedAdamW
from specs import BACKEND_SPECS, backend_params, require


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(13, 32), torch.nn.GELU(), torch.nn.LayerNorm(32), torch.nn.Linear(32, 3))


def _train(model, optimizer, steps, seed=1, scheduler=None):
    torch.manual_seed(seed)
    for _ in range(steps):
        optimizer.zero_grad()
        x = torch.randn(16, 13)
        model(x).pow(2).mean().backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()


def _assert_same_training(a, b, rtol=2e-6, atol=1e-7):
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=rtol, atol=atol, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("ours, theirs", [(FusedAdam, torch.optim.Adam), (FusedAdamW, torch.optim.AdamW)])
def test_constructor_signature_and_defaults_match_torch(ours, theirs):
    mine = inspect.signature(ours.__init__).parameters
    torch_params = inspect.signature(theirs.__init__).parameters
    assert list(mine)[: len(torch_params)] == list(torch_params)  # same order: positional calls work alike
    for name, param in torch_params.items():
        assert name in mine, f"{ours.__name__} lacks torch's argument {name!r}"
        assert mine[name].default == param.default, name
        assert mine[name].kind == param.kind, name
    ours_only = {"backend": "auto", "master_weights": False, "state_dtype": None, "rounding": "nearest",
                 "kahan_summation": False, "rounding_seed": None}
    assert set(mine) - set(torch_params) == set(ours_only)
    for name, default in ours_only.items():
        assert mine[name].default == default and mine[name].kind == inspect.Parameter.KEYWORD_ONLY, name


@pytest.mark.parametrize("ours, theirs", [(FusedAdam, torch.optim.Adam), (FusedAdamW, torch.optim.AdamW)])
def test_param_group_keys_and_values_match_torch(ours, theirs):
    a, b = ours(_model().parameters()), theirs(_model().parameters())
    ours_only = ("params", "backend", "master_weights", "state_dtype", "rounding", "kahan_summation", "rounding_seed")
    assert {k: v for k, v in a.param_groups[0].items() if k not in ours_only} == \
        {k: v for k, v in b.param_groups[0].items() if k != "params"}


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("ours, theirs", [(FusedAdam, torch.optim.Adam), (FusedAdamW, torch.optim.AdamW)])
def test_training_matches_torch(backend, ours, theirs):
    require(backend)
    a, b = _model(), _model()
    _train(a, ours(a.parameters(), lr=1e-2, backend=backend.name), 10)
    _train(b, theirs(b.parameters(), lr=1e-2), 10)
    _assert_same_training(a, b)


def test_step_returns_the_closure_loss_and_runs_it_with_grad_enabled():
    model = _model()
    opt = FusedAdam(model.parameters())
    calls = []

    def closure():
        calls.append(torch.is_grad_enabled())
        opt.zero_grad()
        loss = model(torch.randn(4, 13)).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert calls == [True]
    assert isinstance(loss, torch.Tensor) and loss.ndim == 0
    assert opt.step() is None


def test_zero_grad_sets_grads_to_none():
    model = _model()
    opt = FusedAdam(model.parameters())
    _train(model, opt, 1)
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_named_parameters_are_accepted_and_named_in_the_state_dict():
    a, b = _model(), _model()
    ours, theirs = FusedAdam(a.named_parameters()), torch.optim.Adam(b.named_parameters())
    _train(a, ours, 2)
    _train(b, theirs, 2)
    assert ours.state_dict()["param_groups"][0]["param_names"] == theirs.state_dict()["param_groups"][0]["param_names"]
    _assert_same_training(a, b)


def test_param_groups_with_their_own_hyperparameters():
    def groups(model):
        return [{"params": model[0].parameters(), "lr": 0.05, "betas": (0.8, 0.99)},
                {"params": model[2].parameters(), "weight_decay": 0.3, "amsgrad": True},
                {"params": model[3].parameters(), "maximize": True, "eps": 1e-3}]

    a, b = _model(), _model()
    _train(a, FusedAdam(groups(a), lr=1e-2), 6)
    _train(b, torch.optim.Adam(groups(b), lr=1e-2), 6)
    _assert_same_training(a, b)


def test_add_param_group_later():
    a, b = _model(), _model()
    oa = FusedAdam(a[0].parameters(), lr=1e-2)
    ob = torch.optim.Adam(b[0].parameters(), lr=1e-2)
    _train(a, oa, 2)
    _train(b, ob, 2)
    oa.add_param_group({"params": list(a[3].parameters()), "lr": 3e-2})
    ob.add_param_group({"params": list(b[3].parameters()), "lr": 3e-2})
    _train(a, oa, 3, seed=5)
    _train(b, ob, 3, seed=5)
    _assert_same_training(a, b)


def test_params_without_grad_are_untouched_and_get_no_state():
    model = _model()
    frozen = model[0].weight
    frozen.requires_grad_(False)
    before = frozen.clone()
    opt = FusedAdam(model.parameters())
    _train(model, opt, 3)
    assert torch.equal(frozen, before)
    assert frozen not in opt.state
    assert all(p in opt.state for p in model.parameters() if p.requires_grad)


def test_a_param_that_gets_a_grad_later_starts_its_own_step_count():
    p, q = torch.randn(8, requires_grad=True), torch.randn(8, requires_grad=True)
    p2, q2 = p.detach().clone().requires_grad_(), q.detach().clone().requires_grad_()
    ours, theirs = FusedAdam([p, q], lr=0.1), torch.optim.Adam([p2, q2], lr=0.1)
    for step in range(5):
        for x, y in ((p, p2), (q, q2)):
            if x is p or step >= 2:
                g = torch.randn(8)
                x.grad, y.grad = g.clone(), g.clone()
            else:
                x.grad = y.grad = None
        ours.step()
        theirs.step()
    assert ours.state[q]["step"].item() == 3 and ours.state[p]["step"].item() == 5
    torch.testing.assert_close(p, p2)
    torch.testing.assert_close(q, q2)


@pytest.mark.parametrize("make_scheduler", [
    lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5),
    lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.05, total_steps=12),  # cycles betas too
    lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=5),
], ids=["step", "one-cycle", "cosine"])
def test_lr_schedulers(make_scheduler):
    a, b = _model(), _model()
    oa, ob = FusedAdamW(a.parameters(), lr=1e-2), torch.optim.AdamW(b.parameters(), lr=1e-2)
    _train(a, oa, 10, scheduler=make_scheduler(oa))
    _train(b, ob, 10, scheduler=make_scheduler(ob))
    _assert_same_training(a, b)
    assert oa.param_groups[0]["lr"] == ob.param_groups[0]["lr"]


def test_lr_as_a_tensor_updated_in_place():
    a, b = _model(), _model()
    lr_a, lr_b = torch.tensor(1e-2), torch.tensor(1e-2)
    oa, ob = FusedAdam(a.parameters(), lr=lr_a), torch.optim.Adam(b.parameters(), lr=lr_b)
    _train(a, oa, 3)
    _train(b, ob, 3)
    lr_a.fill_(3e-2)
    lr_b.fill_(3e-2)
    _train(a, oa, 3, seed=9)
    _train(b, ob, 3, seed=9)
    _assert_same_training(a, b)


@pytest.mark.parametrize("direction", ["torch-to-fused", "fused-to-torch"])
def test_state_dict_interchange_with_torch(direction):
    """A checkpoint of one continues identically in the other."""
    first, second = (torch.optim.AdamW, FusedAdamW) if direction == "torch-to-fused" else (FusedAdamW, torch.optim.AdamW)
    a = _model()
    oa = first(a.parameters(), lr=1e-2, amsgrad=True)
    _train(a, oa, 4)
    checkpoint = copy.deepcopy(oa.state_dict())

    b = copy.deepcopy(a)
    ob = second(b.parameters(), lr=1e-2, amsgrad=True)
    ob.load_state_dict(checkpoint)
    _train(a, oa, 4, seed=3)
    _train(b, ob, 4, seed=3)
    _assert_same_training(a, b)
    for p, q in zip(a.parameters(), b.parameters()):
        assert oa.state[p]["step"].item() == ob.state[q]["step"].item() == 8


@pytest.mark.parametrize("backend", ["cpu", "cuda-host"])
def test_loading_a_state_dict_shares_no_step_counter_with_the_optimizer_that_saved_it(backend):
    """torch's loader keeps a CPU "step" tensor by reference: without a copy, the optimizer that saved the state
    advances the loaded one's counters too (seen: 2.5e-3 apart after two steps of each, torch 2.11)."""
    require(next(s for s in BACKEND_SPECS if s.name == backend))
    a = _model()
    oa = torch.optim.AdamW(a.parameters(), lr=1e-2)
    _train(a, oa, 2)
    b, c = copy.deepcopy(a), copy.deepcopy(a)
    ob = FusedAdamW(b.parameters(), lr=1e-2, backend=backend)
    ob.load_state_dict(oa.state_dict())  # no copy of the state_dict: the step tensors are oa's own
    oc = torch.optim.AdamW(c.parameters(), lr=1e-2)
    oc.load_state_dict(copy.deepcopy(oa.state_dict()))
    _train(a, oa, 2, seed=3)  # the saving optimizer goes on first
    _train(b, ob, 2, seed=3)
    _train(c, oc, 2, seed=3)
    _assert_same_training(b, c)
    assert [ob.state[p]["step"].item() for p in b.parameters()] == [4.0] * len(list(b.parameters()))
    assert [oa.state[p]["step"].item() for p in a.parameters()] == [4.0] * len(list(a.parameters()))


def test_a_checkpoint_keeps_the_loading_optimizers_backend():
    """Where a step runs is this process's choice: a checkpoint saved by a GPU run (backend "cuda" in its groups)
    loads into a CPU optimizer and steps there, and one saved with backend "cpu" does not move a "torch" group."""
    a = _model()
    oa = FusedAdam(a.parameters(), lr=1e-2, backend="cpu")
    _train(a, oa, 2)
    saved_on_a_gpu = copy.deepcopy(oa.state_dict())
    saved_on_a_gpu["param_groups"][0]["backend"] = "cuda"
    for backend in ("cpu", "torch"):
        b = copy.deepcopy(a)
        ob = FusedAdam(b.parameters(), lr=1e-2, backend=backend)
        ob.load_state_dict(copy.deepcopy(saved_on_a_gpu))
        assert ob.param_groups[0]["backend"] == backend
        assert ob.backends == [{("cpu", torch.float32): backend}]
        _train(b, ob, 1, seed=3)
        assert all(ob.state[p]["step"].item() == 3 for p in b.parameters())


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_step_counters_follow_torchs_dtype_under_a_float64_default(backend):
    """torch keeps step counters in float64 when torch.set_default_dtype(torch.float64) is in effect (fp32 parameters
    included); the CPU backends keep them the same way, and step the same numbers."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        for param_dtype in (torch.float32, torch.float64):
            p = torch.randn(257, dtype=param_dtype)
            q = p.clone()
            ours = FusedAdam([p], lr=1e-2, backend=backend)
            theirs = torch.optim.Adam([q], lr=1e-2)
            for _ in range(3):
                g = torch.randn(257, dtype=param_dtype)
                p.grad, q.grad = g.clone(), g.clone()
                ours.step()
                theirs.step()
            assert ours.state[p]["step"].dtype == theirs.state[q]["step"].dtype == torch.float64
            assert ours.state[p]["step"].item() == 3
            torch.testing.assert_close(p, q)
            torch.testing.assert_close(ours.state_dict()["state"][0]["step"], theirs.state_dict()["state"][0]["step"])
    finally:
        torch.set_default_dtype(previous)


def test_state_dict_format_is_torchs():
    model = _model()
    opt = FusedAdam(model.parameters(), amsgrad=True)
    _train(model, opt, 2)
    sd = opt.state_dict()
    for i, p in enumerate(model.parameters()):
        entry = sd["state"][i]
        assert set(entry) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
        assert entry["step"].dtype == torch.float32 and entry["step"].ndim == 0 and entry["step"].item() == 2
        assert entry["exp_avg"].shape == p.shape and entry["exp_avg"].dtype == p.dtype


def test_save_and_load_through_torch_save(tmp_path):
    a = _model()
    oa = FusedAdam(a.parameters(), lr=1e-2)
    _train(a, oa, 3)
    torch.save({"model": a.state_dict(), "opt": oa.state_dict()}, tmp_path / "ckpt.pt")
    b = _model(seed=5)
    ob = FusedAdam(b.parameters(), lr=1e-2)
    ckpt = torch.load(tmp_path / "ckpt.pt")
    b.load_state_dict(ckpt["model"])
    ob.load_state_dict(ckpt["opt"])
    _train(a, oa, 2, seed=4)
    _train(b, ob, 2, seed=4)
    _assert_same_training(a, b, rtol=0, atol=0)


def test_deepcopy_and_pickle_of_the_optimizer():
    """A copy (deepcopy, or a pickle round trip) is an independent optimizer over copied parameters: stepped with
    the same gradients it moves exactly as the original does, and stepping it leaves the original alone."""
    model = _model()
    opt = FusedAdam(model.parameters(), lr=1e-2)
    _train(model, opt, 2)
    for make_copy in (copy.deepcopy, lambda o: pickle.loads(pickle.dumps(o))):
        copied = make_copy(opt)
        assert copied.state_dict()["param_groups"] == opt.state_dict()["param_groups"]
        assert copied.param_groups[0]["backend"] == "auto"
        originals, copies = opt.param_groups[0]["params"], copied.param_groups[0]["params"]
        before = [p.detach().clone() for p in originals]
        gen = torch.Generator().manual_seed(5)
        grads = [torch.randn(p.shape, generator=gen) for p in originals]
        for p, g in zip(copies, grads):
            p.grad = g.clone()
        copied.step()
        for p, was in zip(originals, before):
            assert torch.equal(p.detach(), was)  # the original did not move
        for p, g in zip(originals, grads):
            p.grad = g.clone()
        opt.step()
        for p, q, was in zip(originals, copies, before):
            assert q is not p and not torch.equal(p.detach(), was)
            assert torch.equal(p.detach(), q.detach())
            for key, value in opt.state[p].items():
                assert torch.equal(copied.state[q][key], value), key


def test_backends_says_what_runs_each_group():
    model = _model()
    opt = FusedAdam([{"params": model[0].parameters()}, {"params": model[3].parameters(), "backend": "torch"}])
    assert opt.backends == [{("cpu", torch.float32): "cpu"}, {("cpu", torch.float32): "torch"}]


def test_step_hooks_run():
    model = _model()
    opt = FusedAdam(model.parameters())
    calls = []
    opt.register_step_pre_hook(lambda o, args, kwargs: calls.append("pre"))
    opt.register_step_post_hook(lambda o, args, kwargs: calls.append("post"))
    _train(model, opt, 2)
    assert calls == ["pre", "post", "pre", "post"]


def test_the_profiler_sees_the_step():
    model = _model()
    opt = FusedAdam(model.parameters())
    _train(model, opt, 1)
    with torch.profiler.profile() as prof:
        opt.step()
    assert any(e.name == "Optimizer.step#FusedAdam.step" for e in prof.events())


def test_foreach_and_fused_are_accepted_and_kept():
    model = _model()
    opt = FusedAdam(model.parameters(), foreach=True, fused=False)
    _train(model, opt, 1)
    assert opt.param_groups[0]["foreach"] is True and opt.param_groups[0]["fused"] is False
