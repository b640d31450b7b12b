"""16-bit storage is loaded exactly and rounded to nearest even, for every finite fp16 / bf16 value.

A zero gradient under AdamW with lr * weight_decay = 0.5 makes one step p -> 0.5 * p exactly in fp32 (the Adam
term is 0 / eps = 0), so the stored parameter must be torch's own rounding of 0.5 * p: exact for most values,
round-to-nearest-even at the bottom of the subnormals. With lr=0 and betas=(0, 0.5) one step must store m = g
exactly, and v = 0.5 * g * g, a product that is exact in fp32 for 16-bit inputs, so its rounding to 16 bits must
be bit-identical to torch's own conversion."""
import pytest
import torch

from fusedadam import FusedAdam
from specs import backend_params, require


def _every_finite(dtype):
    bits = torch.arange(-2**15, 2**15, dtype=torch.int32).to(torch.int16)
    values = bits.view(dtype)
    return values[torch.isfinite(values.float())]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("backend", backend_params())
def test_every_16_bit_value_is_loaded_exactly_and_stored_rounded_to_nearest_even(backend, dtype):
    require(backend)
    values = _every_finite(dtype).to(backend.device)
    p = values.clone()
    p.grad = torch.zeros_like(values)
    FusedAdam([p], lr=1.0, weight_decay=0.5, decoupled_weight_decay=True, backend=backend.name).step()
    expected = (values.float() * 0.5).to(dtype)
    assert not torch.equal(expected, values)  # the store is seen: every value but zero moved
    assert torch.equal(p.view(torch.int16), expected.view(torch.int16))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("backend", backend_params())
def test_moments_are_rounded_like_torch(backend, dtype):
    require(backend)
    g = _every_finite(dtype).to(backend.device)
    p = torch.zeros_like(g)
    p.grad = g.clone()
    optimizer = FusedAdam([p], lr=0.0, betas=(0.0, 0.5), backend=backend.name)
    optimizer.step()
    state = optimizer.state[p]
    assert torch.equal(state["exp_avg"], g)  # value-exact; 0 * m + 1 * (-0.0) is +0.0 in IEEE arithmetic
    expected = (0.5 * g.float() * g.float()).to(dtype)
    assert torch.equal(state["exp_avg_sq"].view(torch.int16), expected.view(torch.int16))


_STEP_FP16 = """
import sys, torch
from fusedadam import FusedAdam
torch.manual_seed(0)
ps = [torch.randn(n).half() for n in (1, 7, 1000, 70_001)]
for amsgrad in (False, True):
    qs = [p.clone() for p in ps]
    opt = FusedAdam(qs, lr=0.01, amsgrad=amsgrad, weight_decay=0.1, backend="cpu")
    for step in range(3):
        for q in qs:
            q.grad = (torch.randn(q.shape) * 10.0 ** (step - 2)).half()
        opt.step()
    torch.save([qs, [opt.state[q] for q in qs]], sys.argv[1] + f".{amsgrad}")
"""


def test_fp16_portable_and_f16c_paths_agree_bit_for_bit(tmp_path):
    """Where the CPU has F16C, fp16 goes through it; elsewhere through portable conversions. Both round to
    nearest even, so they must produce identical bits."""
    import subprocess
    import sys

    outputs = {}
    for name, env in (("f16c", {}), ("portable", {"FUSEDADAM_DISABLE_F16C": "1"})):
        path = str(tmp_path / name)
        done = subprocess.run([sys.executable, "-c", _STEP_FP16, path], env={**__import__("os").environ, **env},
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        outputs[name] = [torch.load(f"{path}.{amsgrad}") for amsgrad in (False, True)]
    for (params_a, states_a), (params_b, states_b) in zip(outputs["f16c"], outputs["portable"]):
        for a, b in zip(params_a, params_b):
            assert torch.equal(a.view(torch.int16), b.view(torch.int16))
        for sa, sb in zip(states_a, states_b):
            for key in sa:
                assert torch.equal(sa[key].view(torch.int16) if key != "step" else sa[key],
                                   sb[key].view(torch.int16) if key != "step" else sb[key]), key
