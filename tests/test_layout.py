"""Parameters that are not plain contiguous tensors: views, transposes, swapped storage, odd gradients."""
import pytest
import torch

from fusedadam import FusedAdam, FusedAdamW


def _pair(make):
    """The same parameter twice: one for fusedadam, one for torch."""
    a = make()
    b = a.detach().clone().requires_grad_()
    if not a.is_contiguous():
        b = a.detach().clone(memory_format=torch.preserve_format).requires_grad_()
    return a, b


def _step_both(ours, theirs, a, b, grad):
    a.grad, b.grad = grad.clone(memory_format=torch.preserve_format), grad.clone(memory_format=torch.preserve_format)
    ours.step()
    theirs.step()


def test_transposed_parameter_runs_natively_and_matches_torch():
    a = torch.nn.Parameter(torch.randn(7, 5).t())  # strides (1, 5): dense, not contiguous
    b = torch.nn.Parameter(a.detach().clone(memory_format=torch.preserve_format))
    ours, theirs = FusedAdamW([a], lr=0.05), torch.optim.AdamW([b], lr=0.05)
    assert ours.backends == [{("cpu", torch.float32): "cpu"}]
    for _ in range(4):
        g = torch.randn(7, 5).t()
        _step_both(ours, theirs, a, b, g)
    torch.testing.assert_close(a, b, rtol=2e-6, atol=1e-7)
    assert ours.state[a]["exp_avg"].stride() == a.stride()


def test_strided_view_parameter_goes_to_the_torch_backend_under_auto():
    a = torch.randn(20)[::2].requires_grad_()
    b = a.detach().clone().requires_grad_()
    ours, theirs = FusedAdam([a, torch.randn(3, requires_grad=True)], lr=0.05), torch.optim.Adam([b], lr=0.05)
    assert ours.backends == [{("cpu", torch.float32): "cpu+torch"}]
    for _ in range(3):
        _step_both(ours, theirs, a, b, torch.randn(10))
    torch.testing.assert_close(a, b)


def test_gradient_with_other_strides_than_its_parameter():
    a = torch.randn(6, 4, requires_grad=True)
    b = a.detach().clone().requires_grad_()
    ours, theirs = FusedAdam([a], lr=0.05), torch.optim.Adam([b], lr=0.05)
    for _ in range(3):
        g = torch.randn(4, 6).t()  # same shape, transposed layout
        a.grad, b.grad = g, g.contiguous()
        ours.step()
        theirs.step()
    torch.testing.assert_close(a, b, rtol=2e-6, atol=1e-7)


def test_replaced_parameter_storage_is_followed():
    """p.data = ... between steps (model surgery, loading weights): the step must go to the new storage."""
    a = torch.randn(100, requires_grad=True)
    b = a.detach().clone().requires_grad_()
    ours, theirs = FusedAdam([a], lr=0.05), torch.optim.Adam([b], lr=0.05)
    g = torch.randn(100)
    a.grad, b.grad = g.clone(), g.clone()
    ours.step()
    theirs.step()
    fresh = torch.randn(100)
    a.data = fresh.clone()
    b.data = fresh.clone()
    ours.step()  # the same gradient objects as before
    theirs.step()
    torch.testing.assert_close(a, b)


def test_gradient_updated_in_place_between_steps():
    """Accumulating into the same gradient object (zero_grad(set_to_none=False)) is read afresh every step."""
    a = torch.randn(50, requires_grad=True)
    b = a.detach().clone().requires_grad_()
    ours, theirs = FusedAdam([a], lr=0.05), torch.optim.Adam([b], lr=0.05)
    a.grad, b.grad = torch.zeros(50), torch.zeros(50)
    for _ in range(4):
        g = torch.randn(50)
        a.grad.copy_(g)
        b.grad.copy_(g)
        ours.step()
        theirs.step()
    torch.testing.assert_close(a, b)


def test_gradient_storage_replaced_in_place():
    a = torch.randn(50, requires_grad=True)
    b = a.detach().clone().requires_grad_()
    ours, theirs = FusedAdam([a], lr=0.05), torch.optim.Adam([b], lr=0.05)
    a.grad, b.grad = torch.randn(50), None
    b.grad = a.grad.clone()
    ours.step()
    theirs.step()
    g = torch.randn(50)
    a.grad.data = g.clone()  # same object, new storage
    b.grad = g.clone()
    ours.step()
    theirs.step()
    torch.testing.assert_close(a, b)


def test_complex_parameters_follow_torch():
    a = torch.randn(8, dtype=torch.complex64, requires_grad=True)
    b = a.detach().clone().requires_grad_()
    ours, theirs = FusedAdam([a], lr=0.05), torch.optim.Adam([b], lr=0.05)
    assert ours.backends == [{("cpu", torch.complex64): "torch"}]
    for _ in range(3):
        _step_both(ours, theirs, a, b, torch.randn(8, dtype=torch.complex64))
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_mixed_dtypes_in_one_group(dtype):
    ps = [torch.randn(9, dtype=dtype, requires_grad=True), torch.randn(9, dtype=torch.float64, requires_grad=True)]
    qs = [p.detach().clone().requires_grad_() for p in ps]
    ours, theirs = FusedAdam(ps, lr=0.01), torch.optim.Adam(qs, lr=0.01, fused=True)
    for _ in range(3):
        for p, q in zip(ps, qs):
            g = torch.randn_like(p)
            p.grad, q.grad = g.clone(), g.clone()
        ours.step()
        theirs.step()
    for p, q in zip(ps, qs):
        torch.testing.assert_close(p, q)
