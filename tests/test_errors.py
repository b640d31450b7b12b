"""Every bad input raises a clear error naming the parameter and the fix, before anything is modified."""
import copy

import pytest
import torch

from fusedadam import FusedAdam, FusedAdamW


def _params(n=3):
    return [torch.randn(5, requires_grad=True) for _ in range(n)]


def _snapshot(opt):
    return copy.deepcopy({"params": [[p.detach().clone() for p in g["params"]] for g in opt.param_groups],
                          "groups": [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups],
                          "state": opt.state_dict()["state"]})


def _assert_unchanged(opt, snapshot):
    now = _snapshot(opt)
    for before, after in zip(snapshot["params"], now["params"]):
        for x, y in zip(before, after):
            assert torch.equal(x, y)
    assert now["groups"] == snapshot["groups"]
    assert now["state"].keys() == snapshot["state"].keys()
    for key, entry in snapshot["state"].items():
        for name, value in entry.items():
            assert torch.equal(now["state"][key][name], value), (key, name)


@pytest.mark.parametrize("kwargs, match", [
    ({"lr": -1e-3}, r"Invalid learning rate: lr=-0.001; it must be >= 0"),
    ({"lr": float("nan")}, r"Invalid learning rate"),
    ({"lr": torch.tensor([1e-3, 1e-3])}, r"Tensor lr must be 1-element"),
    ({"eps": -1e-8}, r"Invalid epsilon value: eps=-1e-08"),
    ({"weight_decay": -0.1}, r"Invalid weight_decay value: weight_decay=-0.1"),
    ({"betas": (1.0, 0.999)}, r"betas\[0\]=1.0; each beta must be in \[0, 1\)"),
    ({"betas": (0.9, -0.1)}, r"betas\[1\]=-0.1"),
    ({"betas": (0.9,)}, r"betas must be a pair"),
    ({"differentiable": True}, r"differentiable=True is not supported .* torch.optim.Adam\(differentiable=True\)"),
    ({"backend": "gpu"}, r"Unknown backend='gpu'; choose one of 'auto', 'cpu', 'cuda', 'triton', 'torch'"),
    ({"backend": "cuda"}, r"backend='cuda' cannot step parameter 0 of param group 0: .*backend='auto'"),
    ({"amsgrad": 1}, r"amsgrad must be True or False"),
])
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FusedAdam(_params(), **kwargs)


def _leaf(n=3):
    return torch.randn(n, requires_grad=True)


# Everything torch 2.13's Adam / AdamW constructors (and Optimizer's) refuse, as (params, kwargs): a drop-in must refuse
# each with the same exception type, so that code catching torch's errors catches ours.
_SHARED = _leaf()
TORCH_REFUSES = {
    "params-is-a-tensor": (lambda: _leaf(), {}),
    "no-params": (lambda: [], {}),
    "a-group-holding-a-set": (lambda: [{"params": {_leaf()}}], {}),
    "a-group-without-params": (lambda: [{"lr": 0.1}], {}),
    "not-a-tensor": (lambda: [_leaf(), 1.0], {}),
    "not-a-leaf": (lambda: [_leaf() * 2], {}),
    "named-and-unnamed": (lambda: [("a", _leaf()), _leaf()], {}),
    "in-two-groups": (lambda: [{"params": [_SHARED]}, {"params": [_SHARED]}], {}),
    "negative-lr": (lambda: [_leaf()], {"lr": -1.0}),
    "nan-lr": (lambda: [_leaf()], {"lr": float("nan")}),
    "string-lr": (lambda: [_leaf()], {"lr": "0.1"}),
    "none-lr": (lambda: [_leaf()], {"lr": None}),
    "two-element-lr": (lambda: [_leaf()], {"lr": torch.tensor([0.1, 0.1])}),
    "tensor-lr-with-foreach": (lambda: [_leaf()], {"lr": torch.tensor(0.1), "foreach": True}),
    "negative-eps": (lambda: [_leaf()], {"eps": -1e-8}),
    "string-eps": (lambda: [_leaf()], {"eps": "x"}),
    "negative-weight-decay": (lambda: [_leaf()], {"weight_decay": -0.1}),
    "none-weight-decay": (lambda: [_leaf()], {"weight_decay": None}),
    "beta1-one": (lambda: [_leaf()], {"betas": (1.0, 0.999)}),
    "beta1-negative": (lambda: [_leaf()], {"betas": (-0.1, 0.999)}),
    "beta2-one": (lambda: [_leaf()], {"betas": (0.9, 1.0)}),
    "betas-none": (lambda: [_leaf()], {"betas": None}),
    "integer-beta": (lambda: [_leaf()], {"betas": (0, 0.999)}),
    "float-and-tensor-betas": (lambda: [_leaf()], {"betas": (0.9, torch.tensor(0.999))}),
    "tensor-betas-with-foreach": (lambda: [_leaf()], {"betas": (torch.tensor(0.9), torch.tensor(0.999)),
                                                      "foreach": True}),
    "fused-and-differentiable": (lambda: [_leaf()], {"fused": True, "differentiable": True}),
    "fused-and-foreach": (lambda: [_leaf()], {"fused": True, "foreach": True}),
}


@pytest.mark.parametrize("ours, theirs", [(FusedAdam, torch.optim.Adam), (FusedAdamW, torch.optim.AdamW)],
                         ids=["Adam", "AdamW"])
@pytest.mark.parametrize("case", TORCH_REFUSES.values(), ids=TORCH_REFUSES.keys())
def test_what_torch_refuses_is_refused_with_torchs_exception_type(ours, theirs, case):
    params, kwargs = case
    with pytest.raises(Exception) as torch_error:
        theirs(params(), **kwargs)
    with pytest.raises(Exception) as our_error:
        ours(params(), **kwargs)
    assert type(our_error.value) is type(torch_error.value), (our_error.value, torch_error.value)


def test_a_beta_tensor_of_two_elements_is_a_value_error():
    """torch means to raise ValueError("Tensor betas[0] must be 1-element") here, but its range check before it
    already fails with RuntimeError ("Boolean value of Tensor with more than one value is ambiguous"): the one place
    where fusedadam raises torch's intended error rather than its accidental one."""
    with pytest.raises(ValueError, match=r"Tensor betas\[0\] must be 1-element"):
        FusedAdam([_leaf()], betas=(torch.tensor([0.9, 0.9]), torch.tensor(0.999)))


def test_add_param_group_refuses_what_torch_refuses():
    for ours, theirs in ((FusedAdam([_leaf()]), torch.optim.Adam([_leaf()])),):
        for bad in ([_leaf()], {"params": {_leaf()}}, {"params": [_leaf() * 2]}):
            with pytest.raises(Exception) as torch_error:
                theirs.add_param_group(bad)
            with pytest.raises(type(torch_error.value)):
                ours.add_param_group(bad)


def test_non_floating_point_params_are_rejected():
    with pytest.raises(ValueError, match=r"parameter 1 of param group 0 has dtype torch.int64: Adam only optimizes"):
        FusedAdam([torch.randn(3), torch.arange(3)])


def test_a_param_group_holding_a_set_is_rejected_like_torch():
    with pytest.raises(TypeError, match="ordered collections"):
        FusedAdam([{"params": {torch.randn(3, requires_grad=True)}}])


def test_named_cpu_backend_refuses_what_it_cannot_step():
    base = torch.randn(10, requires_grad=True)
    strided = base.detach()[::2].requires_grad_()  # a view with a step: not one dense block
    with pytest.raises(ValueError, match=r"backend='cpu' cannot step parameter 1 of param group 0: .*dense block"):
        FusedAdam([torch.randn(3, requires_grad=True), strided], backend="cpu")
    with pytest.raises(ValueError, match=r"backend='cpu' cannot step parameter 0 .*complex|dtype torch.complex64"):
        FusedAdam([torch.randn(3, dtype=torch.complex64, requires_grad=True)], backend="cpu")


def test_sparse_gradient_fails_before_anything_changes():
    dense = _params()
    sparse_param = torch.randn(4, 3, requires_grad=True)
    opt = FusedAdam([{"params": dense}, {"params": [sparse_param]}])
    for p in dense:
        p.grad = torch.randn_like(p)
    opt.step()  # state exists for the dense group
    for p in dense:
        p.grad = torch.randn_like(p)
    sparse_param.grad = torch.randn(4, 3).to_sparse()
    snapshot = _snapshot(opt)
    with pytest.raises(RuntimeError, match=r"sparse gradients .*parameter 0 of param group 1.*SparseAdam"):
        opt.step()
    _assert_unchanged(opt, snapshot)


def test_hyperparameter_broken_between_steps_fails_before_anything_changes():
    params = _params()
    opt = FusedAdamW([{"params": params[:2]}, {"params": params[2:]}])
    for p in params:
        p.grad = torch.randn_like(p)
    opt.step()
    opt.param_groups[1]["lr"] = -0.5
    snapshot = _snapshot(opt)
    with pytest.raises(ValueError, match=r"lr \(param group 1\)=-0.5"):
        opt.step()
    _assert_unchanged(opt, snapshot)


def test_bad_param_group_is_not_added():
    opt = FusedAdam(_params())
    with pytest.raises(ValueError, match=r"Invalid beta parameter at index 0: betas\[0\] \(param group 1\)=1.5"):
        opt.add_param_group({"params": _params(), "betas": (1.5, 0.9)})
    assert len(opt.param_groups) == 1


def test_grad_of_another_dtype_fails_before_anything_changes():
    params = _params()
    opt = FusedAdam(params)
    for p in params:
        p.grad = torch.randn_like(p)
    opt.step()
    params[1].grad_dtype = None  # torch allows a grad of any dtype only after this
    params[1].grad = torch.randn(5, dtype=torch.float64)
    snapshot = _snapshot(opt)
    with pytest.raises(RuntimeError, match=r"parameter 1 of param group 0: its gradient \(torch.float64"):
        opt.step()
    _assert_unchanged(opt, snapshot)


@pytest.mark.parametrize("mangle, match", [
    (lambda sd: sd["state"][0].update(exp_avg=torch.zeros(7)), r"exp_avg of shape \(7,\) for parameter 0"),
    (lambda sd: sd["param_groups"][0]["params"].pop(), r"doesn't match the size"),
    (lambda sd: sd["param_groups"].append(dict(sd["param_groups"][0])), r"2 parameter groups, this optimizer has 1"),
])
def test_mismatched_state_dict_is_refused_and_nothing_changes(mangle, match):
    params = _params()
    opt = FusedAdam(params)
    for p in params:
        p.grad = torch.randn_like(p)
    opt.step()
    bad = copy.deepcopy(opt.state_dict())
    mangle(bad)
    snapshot = _snapshot(opt)
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(bad)
    _assert_unchanged(opt, snapshot)
    opt.step()  # and it still works


def test_triton_refuses_what_its_kernel_does_not_store():
    with pytest.raises(ValueError, match=r"backend='triton' cannot step parameter 0 of param group 0: its dtype "
                                         r"torch.float64 is not one of float32, float16, bfloat16"):
        FusedAdam([torch.randn(3, dtype=torch.float64)], backend="triton")


def test_triton_steps_cpu_tensors_only_in_the_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match=r"backend='triton' cannot step parameter 0 of param group 0: .*(no CUDA GPU"
                                         r"|steps tensors on cuda)"):
        FusedAdam(_params(), backend="triton")
