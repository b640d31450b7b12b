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
@pytest.mark.parametrize("backend", backend_params(cpu_isas=True))
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
@pytest.mark.parametrize("backend", backend_params(cpu_isas=True))
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
