"""torch.amp.GradScaler drives FusedAdam through `_step_supports_amp_scaling`: the optimizer unscales the
gradients itself (writing the unscaled values back, as torch's fused kernels do) and skips a step whose
gradients hold inf/NaN, leaving parameters, states AND step counters untouched, while the scaler lowers its
scale. Finite steps match torch.optim.Adam driven by the same scaler."""
import math

import pytest
import torch

from fusedadam import FusedAdam
from specs import backend_dtype_params, require

INF_STEP = 2


def _train(make_optimizer, device, steps=5, clip=False):
    """A few scaled steps; at INF_STEP one gradient is made inf after backward. With `clip`, the gradient-clipping
    recipe: scaler.unscale_(optimizer), then clip_grad_norm_, then scaler.step (the optimizer then gets found_inf
    and no scale). Returns, per step, copies of the parameters, their gradients (after step) and states, and the
    scaler's scale."""
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).to(device)
    optimizer = make_optimizer(model.parameters())
    scaler = torch.amp.GradScaler(device, init_scale=2.0 ** 10)
    data = torch.randn(32, 8, device=device)
    history = []
    for step in range(steps):
        optimizer.zero_grad()
        loss = model(data).pow(2).mean()
        scaler.scale(loss).backward()
        if step == INF_STEP:
            next(model.parameters()).grad[0, 0] = math.inf
        if clip:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.5)
        scaler.step(optimizer)
        scaler.update()
        history.append({
            "params": [p.detach().clone() for p in model.parameters()],
            "grads": [p.grad.clone() for p in model.parameters()],
            "states": [{k: v.clone() for k, v in optimizer.state[p].items()} for p in model.parameters()],
            "scale": scaler.get_scale(),
        })
    return history


@pytest.mark.parametrize("clip", [False, True], ids=["scaled", "unscaled-and-clipped"])
@pytest.mark.parametrize("backend, dtype", backend_dtype_params({"fp32": torch.float32}))
def test_grad_scaler_unscales_skips_inf_steps_and_matches_torch(backend, dtype, clip):
    require(backend)
    ours = _train(lambda ps: FusedAdam(ps, lr=1e-2, weight_decay=0.1, backend=backend.name), backend.device, clip=clip)
    theirs = _train(lambda ps: torch.optim.Adam(ps, lr=1e-2, weight_decay=0.1, foreach=False), backend.device,
                    clip=clip)

    skipped, before = ours[INF_STEP], ours[INF_STEP - 1]
    for p_now, p_before in zip(skipped["params"], before["params"]):
        assert torch.equal(p_now, p_before)
    for s_now, s_before in zip(skipped["states"], before["states"]):
        for key in s_before:
            assert torch.equal(s_now[key].cpu(), s_before[key].cpu()), key
    assert [s["step"].item() for s in ours[-1]["states"]] == [len(ours) - 1] * len(ours[-1]["states"])

    for mine, torch_ in zip(ours, theirs):
        assert mine["scale"] == torch_["scale"]
        for a, b in zip(mine["params"], torch_["params"]):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # The gradients are left unscaled, as GradScaler.unscale_ leaves them: the scale is a power of two, so
    # dividing (ours) and multiplying by its inverse (torch) agree exactly, given the same parameters.
    for a, b in zip(ours[0]["grads"], theirs[0]["grads"]):
        assert torch.equal(a, b)
    assert ours[INF_STEP]["scale"] == ours[INF_STEP - 1]["scale"] / 2


@pytest.mark.parametrize("backend, dtype", backend_dtype_params({"fp32": torch.float32, "bf16": torch.bfloat16}))
def test_found_inf_set_by_hand_skips_and_grad_scale_divides(backend, dtype):
    """The contract without a scaler: grad_scale divides the gradients (written back unscaled), a non-zero
    found_inf (GradScaler sums its per-device flags, so 2 counts too) skips everything."""
    require(backend)
    p = torch.randn(1000, dtype=dtype, device=backend.device)
    reference = p.clone()
    optimizer, torch_optimizer = FusedAdam([p], backend=backend.name), torch.optim.Adam([reference], fused=True)
    grad = torch.randn(1000, dtype=dtype, device=backend.device)
    p.grad, reference.grad = grad * 4, grad.clone()
    optimizer.grad_scale = torch.tensor(4.0, device=backend.device)
    optimizer.found_inf = torch.tensor(0.0, device=backend.device)
    optimizer.step()
    torch_optimizer.step()
    assert torch.equal(p.grad, reference.grad)  # dividing by 4 is exact
    torch.testing.assert_close(p, reference)

    before = {k: v.clone() for k, v in optimizer.state[p].items()}
    p_before = p.clone()
    optimizer.found_inf = torch.tensor(2.0, device=backend.device)
    optimizer.step()
    assert torch.equal(p, p_before)
    for key, value in optimizer.state[p].items():
        assert torch.equal(value, before[key]), key
