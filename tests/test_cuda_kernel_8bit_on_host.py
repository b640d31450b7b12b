"""The CUDA kernel of 8-bit moments (csrc/cuda/adam_kernel_8bit.cuh), played on the host, against the CPU kernel bit for
bit: codes, block absmaxes, parameters, master copies and compensations. What the GPU kernel has and the CPU kernel does
not: one warp per block of 256 elements, its lanes' runs of 16 bytes, the block's absmax exchanged between the lanes
(warp_max, played a warp per call on the host), a short last block, chunks of whole blocks dealt to a block's warps,
and arrays that move element by element where they are not aligned."""
from __future__ import annotations

import pytest
import torch

from cuda_host_harness import CUDA_HOST, assert_bit_equal, fixed_problem, offset_view, run_both
from fusedadam import FusedAdam
from fusedadam.backends import cuda_host
from fusedadam.quantization import BLOCK, SMALLEST_QUANTIZED
from specs import require

pytestmark = pytest.mark.usefixtures("host_grid")

CHUNK = 11 * BLOCK  # 11 blocks: of a block's 8 warps, 3 step two of a chunk's blocks and 5 one
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
CODE_KEYS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")


@pytest.fixture(params=["cuda-host"])  # in every test id, so that `pytest -k cuda-host` selects these too
def host_grid(request, monkeypatch):
    require(CUDA_HOST)
    grid = cuda_host.HostGrid(sms=3, blocks_per_sm=2, order_seed=None, chunk_size=CHUNK)
    monkeypatch.setattr(cuda_host, "GRID", grid)
    return grid


def blocks(n: int) -> int:
    return -(-n // BLOCK)


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
def test_every_block_is_stepped_once_around_block_and_chunk_boundaries(dtype, host_grid):
    """Whole blocks, a last block of 1 and of 255 elements, tensors ending just before, at and after a chunk boundary:
    every element stepped once, whole blocks in runs and a short block's elements one at a time, and every block's
    codes and absmax written once, by its warp."""
    sizes = [SMALLEST_QUANTIZED, SMALLEST_QUANTIZED + 1, SMALLEST_QUANTIZED + 255, 2 * CHUNK - 1, 2 * CHUNK,
             2 * CHUNK + 1, 3 * CHUNK + 129]
    params_of, grads_of = fixed_problem([(n,) for n in sizes], dtype)
    ours, cpu = run_both(params_of, grads_of, state_dtype="8bit", lr=0.01, weight_decay=0.1,
                         decoupled_weight_decay=True, amsgrad=True)
    assert_bit_equal(ours, cpu)
    assert all(s["exp_avg"].dtype == torch.uint8 for s in ours[1])
    tally = cuda_host.last_tally
    assert tally["quantized_blocks"] == sum(blocks(n) for n in sizes)
    assert tally["chunks"] == sum(-(-n // CHUNK) for n in sizes)
    assert tally["packed_elements"] + tally["scalar_elements"] == sum(sizes)
    assert tally["scalar_elements"] == sum(n % BLOCK for n in sizes)
    assert tally["unaligned_pack_arrays"] == 0


@pytest.mark.parametrize("dtype, options", [
    (torch.bfloat16, dict(master_weights=True, amsgrad=True)),
    (torch.float16, dict(master_weights=True)),
    (torch.float16, dict(amsgrad=True, maximize=True)),
    (torch.bfloat16, dict(rounding="stochastic", amsgrad=True)),
    (torch.bfloat16, dict(kahan_summation=True)),
    (torch.bfloat16, dict(kahan_summation=True, amsgrad=True)),  # runs of 4 elements: adam_kernel_8bit.cuh kVec
    (torch.float32, dict(weight_decay=0.05, maximize=True)),
], ids=["bf16-master-amsgrad", "fp16-master", "fp16-amsgrad-maximize", "bf16-stochastic-amsgrad", "bf16-kahan",
        "bf16-kahan-amsgrad", "fp32-l2-maximize"])
def test_every_parameter_update_and_adam_mode(host_grid, dtype, options):
    sizes = [SMALLEST_QUANTIZED + 3, 2 * SMALLEST_QUANTIZED, 2 * CHUNK + 300]
    params_of, grads_of = fixed_problem([(n,) for n in sizes], dtype)
    ours, cpu = run_both(params_of, grads_of, state_dtype="8bit", lr=0.01, rounding_seed=5, **options)
    assert_bit_equal(ours, cpu)


def test_a_nan_in_one_lane_reaches_its_whole_block_as_on_the_cpu(host_grid):
    """The block's absmax is the largest magnitude of all its lanes' moments, NaN included (it propagates, as in
    quantization::block_absmax): a NaN gradient at one element of the second block makes that block's absmax NaN,
    hence its codes, and leaves the other blocks alone."""
    n = SMALLEST_QUANTIZED
    params_of, clean = fixed_problem([(n,)], torch.float32, steps=2)

    def grads_of(step, params):
        grads = clean(step, params)
        if step == 1:
            grads[0][BLOCK + 77] = float("nan")
        return grads

    ours, cpu = run_both(params_of, grads_of, steps=2, state_dtype="8bit", lr=0.01)
    assert_bit_equal(ours, cpu)
    absmax = ours[1][0]["exp_avg_absmax"]
    assert absmax[1].isnan() and not absmax[[0, *range(2, blocks(n))]].isnan().any()


def test_arrays_off_alignment_move_element_by_element_with_the_same_bits(host_grid):
    """A parameter and its gradient views at odd element offsets into flat buffers, and moments whose codes a user
    replaced between steps by views one to three bytes into theirs: those arrays move element by element inside each
    lane's runs, the others in whole accesses, and nothing else changes."""
    sizes = [SMALLEST_QUANTIZED + 5, 2 * CHUNK + 1]
    generator = torch.Generator().manual_seed(8)
    values = [[torch.randn(n, generator=generator) for n in sizes] for _ in range(4)]

    def params_of(backend):
        return [offset_view(n, torch.float32, 1 + i, v) for i, (n, v) in enumerate(zip(sizes, values[0]))]

    def grads_of(step, params):
        return [offset_view(n, torch.float32, 3, v) for n, v in zip(sizes, values[1 + step])]

    def codes_off_alignment(step, optimizer):
        if step != 1:
            return
        for offset, state in enumerate(optimizer.state.values(), start=1):
            for key in CODE_KEYS:
                codes = state[key]
                state[key] = offset_view(codes.numel(), torch.uint8, offset, codes.reshape(-1)).view(codes.shape)

    ours, cpu = run_both(params_of, grads_of, before_step=codes_off_alignment, state_dtype="8bit", lr=0.01,
                         amsgrad=True)
    assert_bit_equal(ours, cpu)
    tally = cuda_host.last_tally
    runs = tally["packed_elements"] // 4  # fp32: runs of 4 elements
    assert runs > 0 and tally["unaligned_pack_arrays"] == 5 * runs  # p, g and the three moments' codes


@pytest.mark.parametrize("sms, blocks_per_sm", [(1, 1), (132, 8)], ids=["one-block", "h100-grid"])
def test_grid_size_and_block_order_change_nothing(host_grid, sms, blocks_per_sm):
    """One block walking every chunk, and more blocks than chunks: the blocks run in shuffled orders, and the codes
    and absmaxes are the same bits."""
    host_grid.sms, host_grid.blocks_per_sm = sms, blocks_per_sm
    sizes = [SMALLEST_QUANTIZED + 700, 3 * CHUNK + 1, SMALLEST_QUANTIZED]
    params_of, grads_of = fixed_problem([(n,) for n in sizes], torch.bfloat16)
    num_chunks = sum(-(-n // CHUNK) for n in sizes)
    for order_seed in (0, 1):
        host_grid.order_seed = order_seed
        ours, cpu = run_both(params_of, grads_of, state_dtype="8bit", lr=0.01, amsgrad=True)
        assert_bit_equal(ours, cpu)
        tally = cuda_host.last_tally
        assert tally["blocks"] == min(num_chunks, sms * blocks_per_sm) and tally["last_blocks"] == 1


def test_gradscaler_unscales_in_the_kernel_and_a_skipped_launch_writes_nothing(host_grid):
    """GradScaler's contract with 8-bit moments: gradients divided by the scale in the kernel and written back (exactly,
    for a power of two), as the CPU kernel does; with found_inf non-zero the launch changes nothing, codes and absmaxes
    included."""
    params_of, grads_of = fixed_problem([(SMALLEST_QUANTIZED + 9,)], torch.float32, steps=2)

    def scaled_grads(step, params):
        return [g * 8 for g in grads_of(step, params)]

    def unscale_by_8(step, optimizer):
        optimizer.grad_scale, optimizer.found_inf = torch.tensor(8.0), torch.tensor(0.0)

    ours, cpu = run_both(params_of, scaled_grads, steps=2, before_step=unscale_by_8, state_dtype="8bit", lr=0.01)
    assert_bit_equal(ours, cpu)
    assert torch.equal(ours[0][0].grad, grads_of(1, None)[0])

    (p,) = params_of("cuda-host")
    optimizer = FusedAdam([p], backend="cuda-host", state_dtype="8bit", lr=0.01)
    p.grad = grads_of(0, None)[0]
    optimizer.step()
    before = {key: value.clone() for key, value in optimizer.state[p].items()}
    p_before = p.clone()
    p.grad = grads_of(1, None)[0]
    optimizer.grad_scale, optimizer.found_inf = torch.tensor(2.0), torch.tensor(1.0)
    optimizer.step()
    assert cuda_host.last_tally["skipped_launches"] == 1
    assert torch.equal(p, p_before)
    assert all(torch.equal(value, before[key]) for key, value in optimizer.state[p].items())


def test_a_chunk_that_would_split_a_block_is_refused(host_grid):
    """A block's absmax is shared by its 256 elements, so a chunk must hold whole blocks: the launcher refuses any other
    chunk size before the kernel runs."""
    host_grid.chunk_size = 3 * 128
    p = torch.randn(SMALLEST_QUANTIZED)
    p.grad = torch.randn_like(p)
    optimizer = FusedAdam([p], backend="cuda-host", state_dtype="8bit")
    with pytest.raises(ValueError, match="8-bit moments need chunk_size a multiple of 256"):
        optimizer.step()


def test_the_native_launcher_refuses_such_a_chunk_before_reading_anything(host_grid):
    """The same refusal at the native entry, whatever table it is handed: here none at all (null addresses), so any
    read before the check would crash."""
    from fusedadam._native import native
    args = dict(device=-1, stream=0, table=0, num_tensors=1, num_chunks=1, chunk_size=3 * 128, dtype=0, state_dtype=4,
                param_update=0, steps=0, done_counter=0, lr=1e-3, lr_on_device=0, beta1=0.9, beta2=0.999,
                beta1_on_device=0, beta2_on_device=0, eps=1e-8, weight_decay=0.0, weight_decay_mode=0, amsgrad=False,
                maximize=False, seed=0, grad_scale=0, found_inf=0)
    with pytest.raises(ValueError, match="with 8-bit moments chunk_size must be a multiple of 256"):
        native().adam_step_cuda_host(**args, sms=1, blocks_per_sm=1, order_seed=0)
