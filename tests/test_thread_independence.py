"""The CPU kernel splits every step's elements into one equal slice per thread, wherever tensor boundaries fall: the
split must not change a single bit, in any mode or storage (stochastic rounding's per-element random bits and Kahan's
compensation, 8-bit moments' blocks included). 1, 2 and 3 threads cut the same tensors at different places. Nor may the ISA variant the
kernel runs as (csrc/cpu/cpu_isa.h): each converts 16-bit storage with its own instructions, in blocks whose edges
fall elsewhere in every tensor."""
import pytest
import torch

from fusedadam import FusedAdam
from specs import MODES, other_cpu_isas

SHAPES = [(100_003,), (5,), (70_001,), (33, 17)]
STORAGE = {
    "fp32": (torch.float32, {}),
    "fp64": (torch.float64, {}),
    "bf16": (torch.bfloat16, {}),
    "fp16": (torch.float16, {}),
    "bf16-master": (torch.bfloat16, dict(master_weights=True)),
    "fp16-master-bf16-states": (torch.float16, dict(master_weights=True, state_dtype=torch.bfloat16)),
    "fp32-bf16-states": (torch.float32, dict(state_dtype=torch.bfloat16)),
    "bf16-stochastic": (torch.bfloat16, dict(rounding="stochastic", rounding_seed=9)),
    "bf16-kahan": (torch.bfloat16, dict(kahan_summation=True)),
    # 8-bit moments: a thread owns whole blocks (their absmax is one value), wherever its slice would start.
    "fp32-8bit": (torch.float32, dict(state_dtype="8bit")),
    "bf16-8bit-stochastic": (torch.bfloat16, dict(state_dtype="8bit", rounding="stochastic", rounding_seed=9)),
}


def _steps(dtype, options, cfg, threads=1):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(21)
        params = [torch.randn(s, generator=gen).to(dtype).requires_grad_() for s in SHAPES]
        optimizer = FusedAdam(params, backend="cpu", **cfg.torch_kwargs(), **options)
        for _ in range(3):
            for p in params:
                p.grad = torch.randn(p.shape, generator=gen).to(dtype)
            optimizer.step()
    finally:
        torch.set_num_threads(before)
    return [(p.detach(), optimizer.state[p]) for p in params]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("storage", STORAGE)
def test_thread_count_does_not_change_a_bit(storage, mode):
    dtype, options = STORAGE[storage]
    one = _steps(dtype, options, MODES[mode], 1)
    for threads in (2, 3):
        for i, ((p, state), (q, expected)) in enumerate(zip(_steps(dtype, options, MODES[mode], threads), one)):
            assert torch.equal(p, q), f"parameter {i} at {threads} threads"
            assert set(state) == set(expected)
            for key, value in expected.items():
                assert torch.equal(state[key], value), f"state[{key!r}] of parameter {i} at {threads} threads"


@pytest.mark.parametrize("mode", ["adamw-amsgrad-maximize", "adam-l2"])
@pytest.mark.parametrize("storage", STORAGE)
def test_every_isa_variant_gives_the_same_bits(storage, mode, monkeypatch):
    isas = other_cpu_isas()
    if not isas:
        pytest.skip("this CPU runs one variant of the CPU kernel only")
    dtype, options = STORAGE[storage]
    picked = _steps(dtype, options, MODES[mode])
    for isa in isas:
        monkeypatch.setenv("FUSEDADAM_CPU_ISA", isa)
        for i, ((p, state), (q, expected)) in enumerate(zip(_steps(dtype, options, MODES[mode]), picked)):
            assert torch.equal(p, q), f"parameter {i} under {isa}"
            for key, value in expected.items():
                assert torch.equal(state[key], value), f"state[{key!r}] of parameter {i} under {isa}"
