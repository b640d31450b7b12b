"""The float64 reference is the specification: it must agree with torch.optim.Adam / AdamW computed in
float64, and with Algorithm 1 worked by hand."""
import math

import pytest
import torch

from fusedadam.reference import AdamConfig, ReferenceState, reference_adam_step
from specs import MODES


@pytest.mark.parametrize("mode", MODES.values(), ids=MODES.keys())
def test_reference_equals_torch_in_float64(mode):
    p0 = torch.randn(257, dtype=torch.float64)
    grads = [torch.randn(257, dtype=torch.float64) * 10.0 ** k for k in (-2, 0, 1, -1, 0)]
    ref = ReferenceState.fresh(p0)
    p = p0.clone()
    opt = torch.optim.Adam([p], **mode.torch_kwargs())
    for g in grads:
        reference_adam_step(ref, g, mode)
        p.grad = g.clone()
        opt.step()
    state = opt.state[p]
    torch.testing.assert_close(ref.param, p, rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(ref.exp_avg, state["exp_avg"], rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(ref.exp_avg_sq, state["exp_avg_sq"], rtol=1e-13, atol=1e-15)
    if mode.amsgrad:
        torch.testing.assert_close(ref.max_exp_avg_sq, state["max_exp_avg_sq"], rtol=1e-13, atol=1e-15)
    assert ref.step == state["step"].item() == len(grads)


def test_adamw_reference_equals_torch_adamw():
    p0 = torch.randn(64, dtype=torch.float64)
    p = p0.clone()
    ref = ReferenceState.fresh(p0)
    cfg = AdamConfig(weight_decay=1e-2, decoupled_weight_decay=True)
    opt = torch.optim.AdamW([p])  # its defaults are exactly cfg
    for _ in range(3):
        g = torch.randn(64, dtype=torch.float64)
        reference_adam_step(ref, g, cfg)
        p.grad = g
        opt.step()
    torch.testing.assert_close(ref.param, p, rtol=1e-13, atol=1e-15)


def test_first_two_steps_by_hand():
    """Algorithm 1 by hand for one scalar, with the pitfalls of DESIGN.md section 2 spelled out: the counter
    starts at 1, the bias corrections use t (not t-1), eps is added after the corrected square root."""
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-3
    cfg = AdamConfig(lr=lr, betas=(b1, b2), eps=eps)
    s = ReferenceState.fresh(torch.tensor([1.0], dtype=torch.float64))
    g1, g2 = 0.5, -2.0

    reference_adam_step(s, torch.tensor([g1]), cfg)
    m1, v1 = (1 - b1) * g1, (1 - b2) * g1 ** 2
    p1 = 1.0 - lr * (m1 / (1 - b1)) / (math.sqrt(v1) / math.sqrt(1 - b2) + eps)
    assert s.step == 1
    assert s.exp_avg.item() == pytest.approx(m1, rel=1e-15)
    assert s.exp_avg_sq.item() == pytest.approx(v1, rel=1e-15)
    assert s.param.item() == pytest.approx(p1, rel=1e-15)
    assert s.param.item() == pytest.approx(1.0 - lr * 0.5 / (0.5 + eps), rel=1e-12)  # first step: ~lr * sign(g)

    reference_adam_step(s, torch.tensor([g2]), cfg)
    m2, v2 = b1 * m1 + (1 - b1) * g2, b2 * v1 + (1 - b2) * g2 ** 2
    p2 = p1 - lr * (m2 / (1 - b1 ** 2)) / (math.sqrt(v2) / math.sqrt(1 - b2 ** 2) + eps)
    assert s.param.item() == pytest.approx(p2, rel=1e-15)


def test_amsgrad_keeps_the_maximum_of_the_biased_second_moment():
    cfg = AdamConfig(amsgrad=True)
    s = ReferenceState.fresh(torch.zeros(1, dtype=torch.float64))
    reference_adam_step(s, torch.tensor([3.0]), cfg)
    peak = s.exp_avg_sq.item()
    reference_adam_step(s, torch.tensor([0.0]), cfg)
    assert s.exp_avg_sq.item() < peak
    assert s.max_exp_avg_sq.item() == peak
