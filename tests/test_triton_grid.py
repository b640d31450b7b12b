"""The Triton kernel's persistent loop in the interpreter. On a GPU each program walks a contiguous range of chunks,
crossing tensor boundaries and reusing its cached per-step constants; the interpreter launches one program per chunk
unless told otherwise, which would leave that walk untested. Here the grid is set below the chunk count
(backends/triton_backend.INTERPRETER_PROGRAMS), and the result must equal the one-program-per-chunk run bit for
bit: the grid may change who computes an element, never what is computed."""
import pytest
import torch

from fusedadam import FusedAdam
from fusedadam.backends import triton_backend
from specs import BACKEND_SPECS

# Interpreter chunks are 16384 elements: 3 + 1 + 2 + 2 + 1 chunks, boundaries inside most programs' ranges.
SHAPES = [(40_000,), (5,), (20_000,), (16_385,), (3,)]
LATE = 2  # this tensor gets its first gradient a step later: two step counts in one launch

MODES = {
    "fp32-adamw-amsgrad": (torch.float32, dict(weight_decay=0.1, decoupled_weight_decay=True, amsgrad=True)),
    "bf16-stochastic": (torch.bfloat16, dict(weight_decay=0.1, rounding="stochastic", rounding_seed=5)),
    "bf16-master": (torch.bfloat16, dict(master_weights=True)),
    # Each program's chunks start on quantization blocks: the absmax of each block is written by one program.
    "fp32-8bit-amsgrad": (torch.float32, dict(state_dtype="8bit", amsgrad=True, weight_decay=0.1)),
}


def _run(dtype, options, programs, monkeypatch):
    monkeypatch.setattr(triton_backend, "INTERPRETER_PROGRAMS", programs)
    gen = torch.Generator().manual_seed(3)
    params = [torch.randn(s, generator=gen).to(dtype).requires_grad_() for s in SHAPES]
    optimizer = FusedAdam(params, lr=0.01, backend="triton", **options)
    for step in range(3):
        for i, p in enumerate(params):
            p.grad = None if (i == LATE and step == 0) else torch.randn(p.shape, generator=gen).to(dtype)
        optimizer.step()
    return params, optimizer


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("programs", [1, 2, 4])
def test_fewer_programs_than_chunks_compute_exactly_what_one_program_per_chunk_computes(mode, programs, monkeypatch):
    spec = next(s for s in BACKEND_SPECS if s.name == "triton" and s.device == "cpu")
    if spec.skip_reason():
        pytest.skip(spec.skip_reason())
    dtype, options = MODES[mode]
    expected, expected_optimizer = _run(dtype, options, None, monkeypatch)
    got, optimizer = _run(dtype, options, programs, monkeypatch)
    for i, (p, q) in enumerate(zip(got, expected)):
        assert torch.equal(p, q), f"parameter {i}"
        for key, value in expected_optimizer.state[q].items():
            assert torch.equal(optimizer.state[p][key], value), f"state[{key!r}] of parameter {i}"
    assert float(optimizer.state[got[LATE]]["step"]) == 2 and float(optimizer.state[got[0]]["step"]) == 3
