"""The CUDA kernel's own code, played on the host (backend "cuda-host"), on what a GPU kernel has and the CPU kernel does
not: 16-byte packs and their alignment, the peeled head and the tail of every chunk, a persistent grid whose blocks
each walk a contiguous range of chunks across tensor boundaries, the cached step constants and rounding streams, block
order, and the last block's epilogue.

Both kernels evaluate the one per-element update of csrc/adam_math.h without contraction (the CPU kernels and the
host side of nvcc are built with -ffp-contract=off), so the host-played CUDA kernel must reproduce the CPU kernel bit
for bit: any element it steps twice, skips, or steps with another element's values or constants shows. The launcher's
counts (cuda_host.last_tally) show which paths ran. The whole correctness suite runs on "cuda-host" too (specs.py)."""
from __future__ import annotations

import pytest
import torch

from cuda_host_harness import CUDA_HOST, assert_bit_equal, fixed_problem, offset_view, run_both
from fusedadam import FusedAdam
from fusedadam.backends import cuda_host
from specs import require

pytestmark = pytest.mark.usefixtures("host_grid")

# Elements per pack of the kernel (adam_kernel.cuh kVec): 16 bytes of the narrowest array.
PACK = {torch.float32: 4, torch.float64: 2, torch.float16: 8, torch.bfloat16: 8}
DTYPES = {"fp32": torch.float32, "fp64": torch.float64, "fp16": torch.float16, "bf16": torch.bfloat16}


@pytest.fixture(params=["cuda-host"])  # in every test id, so that `pytest -k cuda-host` selects these too
def host_grid(request, monkeypatch):
    require(CUDA_HOST)
    grid = cuda_host.HostGrid(sms=3, blocks_per_sm=2, order_seed=None, chunk_size=128)
    monkeypatch.setattr(cuda_host, "GRID", grid)
    return grid


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
def test_every_remainder_of_the_pack_width_around_chunk_boundaries(dtype, host_grid):
    """Sizes of every remainder modulo the pack width, just below, at and above one and two chunk boundaries: each
    element is stepped once, packs and tails included."""
    pack, chunk = PACK[dtype], host_grid.chunk_size
    sizes = sorted({m * chunk + r for m in (0, 1, 2) for r in range(-pack - 1, pack + 2) if m * chunk + r > 0})
    params_of, grads_of = fixed_problem([(n,) for n in sizes], dtype)
    ours, cpu = run_both(params_of, grads_of, lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, amsgrad=True)
    assert_bit_equal(ours, cpu)
    tally = cuda_host.last_tally
    assert tally["chunks"] == sum(-(-n // chunk) for n in sizes)  # every chunk row visited by exactly one block
    assert tally["packed_elements"] + tally["scalar_elements"] == sum(sizes)
    assert tally["scalar_elements"] == sum(min(n - first, chunk) % pack for n in sizes for first in range(0, n, chunk))
    assert tally["unaligned_pack_arrays"] == 0


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
def test_arrays_misaligned_alike_are_peeled_to_aligned_packs(dtype):
    """Parameter views into one flat buffer (FSDP, Megatron) start anywhere. When every array of a tensor is off by
    the same amount, each chunk steps its first few elements one at a time and the rest in aligned packs."""
    pack, n = PACK[dtype], 1000
    for offset in range(1, pack):
        values = [torch.randn(n, dtype=torch.float64).to(dtype) for _ in range(4)]

        def params_of(backend):
            return [offset_view(n, dtype, offset, values[0])]

        def grads_of(step, params):
            return [offset_view(n, dtype, offset, values[1 + step])]

        ours, cpu = run_both(params_of, grads_of, state_offsets=[offset], lr=0.01, amsgrad=True)
        assert_bit_equal(ours, cpu)
        tally = cuda_host.last_tally
        peel = pack - offset
        chunks = -(-n // cuda_host.GRID.chunk_size)
        assert tally["unaligned_pack_arrays"] == 0, offset
        assert tally["packed_elements"] >= n - chunks * 2 * pack, offset
        assert tally["scalar_elements"] >= peel, offset


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
def test_an_array_misaligned_alone_moves_element_by_element_inside_the_packs(dtype):
    """A parameter view off by some elements beside aligned gradients and moments: the packs stay where most bytes are
    aligned, and only the parameter's accesses inside them go one element at a time."""
    pack, n = PACK[dtype], 999
    values = torch.randn(n, dtype=torch.float64).to(dtype)
    params_of, grads_of = (lambda backend: [offset_view(n, dtype, 1, values)]), fixed_problem([(n,)], dtype)[1]
    ours, cpu = run_both(params_of, grads_of, lr=0.01)
    assert_bit_equal(ours, cpu)
    tally = cuda_host.last_tally
    packs = tally["packed_elements"] // pack
    assert packs > 0 and tally["unaligned_pack_arrays"] == packs  # the parameter alone, in every pack


def test_arrays_misaligned_every_which_way():
    """Each array of each tensor at its own offset: whatever the peel and the per-array choice, every element is
    stepped exactly once with its own values."""
    generator = torch.Generator().manual_seed(3)
    sizes = [1, 7, 64, 129, 1000, 513]
    for dtype in DTYPES.values():
        offsets = torch.randint(0, 8, (len(sizes), 2), generator=generator).tolist()
        values = [[torch.randn(n, dtype=torch.float64, generator=generator).to(dtype) for n in sizes] for _ in range(4)]

        def params_of(backend):
            return [offset_view(n, dtype, o[0], v) for n, o, v in zip(sizes, offsets, values[0])]

        def grads_of(step, params):
            return [offset_view(n, dtype, o[1], v) for n, o, v in zip(sizes, offsets, values[1 + step])]

        ours, cpu = run_both(params_of, grads_of, state_offsets=[(o[0] + o[1]) % 8 for o in offsets], lr=0.01,
                             amsgrad=True, weight_decay=0.1)
        assert_bit_equal(ours, cpu)


@pytest.mark.parametrize("sms, blocks_per_sm", [(1, 1), (2, 3), (132, 8)], ids=["one-block", "six-blocks", "h100-grid"])
def test_grid_size_and_block_order_change_nothing(host_grid, sms, blocks_per_sm):
    """One block walking every chunk, a few blocks each walking many chunks across tensor boundaries, and more blocks
    than chunks' worth of a GPU: the blocks run in shuffled orders, and the numbers are the same bits."""
    host_grid.sms, host_grid.blocks_per_sm = sms, blocks_per_sm
    sizes = [int(n) for n in torch.randint(1, 700, (60,), generator=torch.Generator().manual_seed(1))]
    params_of, grads_of = fixed_problem([(n,) for n in sizes], torch.float32)
    num_chunks = sum(-(-n // host_grid.chunk_size) for n in sizes)
    reference = None
    for order_seed in (0, 1, 2):
        host_grid.order_seed = order_seed
        ours, cpu = run_both(params_of, grads_of, lr=0.01, weight_decay=0.1)
        assert_bit_equal(ours, cpu)
        tally = cuda_host.last_tally
        assert tally["blocks"] == min(num_chunks, sms * blocks_per_sm)
        assert tally["chunks"] == num_chunks and tally["last_blocks"] == 1
        params = [p.clone() for p in ours[0]]
        if reference is not None:
            assert all(torch.equal(a, b) for a, b in zip(params, reference))
        reference = params


def test_tensors_at_different_steps_in_one_launch_get_their_own_constants(host_grid):
    """A parameter that has a gradient only every other step lags in its step count, so one launch holds tensors at
    different steps, side by side in one block's chunk range: each needs its own bias corrections, which the kernel
    caches per step count, not per block."""
    host_grid.sms, host_grid.blocks_per_sm = 1, 1
    shapes = [(300,), (5,), (300,), (7,)]
    params_of, _ = fixed_problem(shapes, torch.float32)
    generator = torch.Generator().manual_seed(4)
    grads = [[torch.randn(s, generator=generator) for s in shapes] for _ in range(6)]

    def grads_of(step, params):
        return [g.clone() if i % 2 == 0 or step % 2 == 0 else None for i, g in enumerate(grads[step])]

    ours, cpu = run_both(params_of, grads_of, steps=5, lr=0.05, betas=(0.8, 0.9))
    assert_bit_equal(ours, cpu)
    assert [s["step"].item() for s in ours[1]] == [5, 3, 5, 3]
    # The last launch held the four tensors, at steps 5, 3, 5, 3, in one block: each of its 256 threads computed the
    # constants at each of the four changes of step count.
    assert cuda_host.last_tally["coefficient_computations"] == 4 * 256


def test_stochastic_rounding_takes_each_tensors_own_stream(host_grid):
    """Many small bf16 tensors in one block: each tensor's rounding bits come from its own key, recomputed at every
    tensor boundary of the block's chunk range."""
    host_grid.sms, host_grid.blocks_per_sm = 1, 1
    shapes = [(n,) for n in (33, 1, 100, 64, 65, 7)]
    params_of, grads_of = fixed_problem(shapes, torch.bfloat16)
    ours, cpu = run_both(params_of, grads_of, lr=1e-3, rounding="stochastic", rounding_seed=11)
    assert_bit_equal(ours, cpu)
    assert cuda_host.last_tally["rounding_key_computations"] >= len(shapes)


@pytest.mark.parametrize("mode", [dict(master_weights=True, amsgrad=True), dict(kahan_summation=True, amsgrad=True),
                                  dict(rounding="stochastic", amsgrad=True, state_dtype=torch.float32),
                                  dict(state_dtype=torch.bfloat16, amsgrad=True, maximize=True)],
                         ids=["master", "kahan", "stochastic-fp32-states", "bf16-states"])
def test_precision_modes_across_chunks_and_remainders(host_grid, mode):
    sizes = [1, 3, 127, 128, 129, 300, 1000]
    dtype = torch.float32 if mode.get("state_dtype") is torch.bfloat16 else torch.bfloat16
    params_of, grads_of = fixed_problem([(n,) for n in sizes], dtype)
    ours, cpu = run_both(params_of, grads_of, lr=0.01, weight_decay=0.05, rounding_seed=5, **mode)
    assert_bit_equal(ours, cpu)


def test_gradscaler_unscales_in_the_kernel_and_a_skipped_launch_writes_nothing():
    """GradScaler's contract: gradients divided by the scale in the kernel and written back unscaled (exactly, for a
    power of two); with found_inf non-zero the launch changes nothing, step counters included."""
    p = torch.randn(1000)
    grad = torch.randn(1000)
    p.grad = grad * 4
    optimizer = FusedAdam([p], backend="cuda-host")
    optimizer.grad_scale, optimizer.found_inf = torch.tensor(4.0), torch.tensor(0.0)
    optimizer.step()
    assert torch.equal(p.grad, grad)
    before = {k: v.clone() for k, v in optimizer.state[p].items()}
    p_before = p.clone()
    optimizer.found_inf = torch.tensor(1.0)
    optimizer.grad_scale = torch.tensor(2.0)
    optimizer.step()
    assert cuda_host.last_tally["skipped_launches"] == 1 and cuda_host.last_tally["blocks"] == 0
    assert torch.equal(p, p_before)
    assert all(torch.equal(v, before[k]) for k, v in optimizer.state[p].items())


def test_hyperparameter_tensors_are_read_by_the_kernel_when_it_runs():
    """lr and betas as tensors on the kernel's device (here the host) are read inside the kernel: updating them in
    place between steps takes effect, as with torch.optim.Adam."""
    lr, beta1, beta2 = torch.tensor(0.01), torch.tensor(0.9), torch.tensor(0.99)
    torch_lr, torch_beta1, torch_beta2 = lr.clone(), beta1.clone(), beta2.clone()
    p = torch.randn(300)
    q = p.clone()
    ours = FusedAdam([p], lr=lr, betas=(beta1, beta2), backend="cuda-host")
    theirs = torch.optim.Adam([q], lr=torch_lr, betas=(torch_beta1, torch_beta2))
    for step in range(4):
        g = torch.randn(300)
        p.grad, q.grad = g.clone(), g.clone()
        ours.step()
        theirs.step()
        for mine, torch_ in ((lr, torch_lr), (beta1, torch_beta1), (beta2, torch_beta2)):
            mine.mul_(0.9)
            torch_.mul_(0.9)
    torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
