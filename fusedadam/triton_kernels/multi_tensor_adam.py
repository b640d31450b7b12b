"""One Triton launch steps every tensor of a (device, dtype) partition, walking the launch table of
csrc/launch_table.h with a persistent grid; the per-element math is adam_math.adam_update.

Each program takes a contiguous range of chunk rows, as the CUDA kernel's blocks do. Per chunk it reads the tensor's
row (addresses cast with tl.pointer_type), computes the bias corrections in fp64 when the tensor's step counter differs
from the previous chunk's, and updates the chunk in BLOCK-sized pieces: full pieces without a mask (so the compiler can
use 16-byte accesses when every address is aligned), then one masked tail. The last program to finish increments every
step counter (one launch, no race: every other program has read its counters before it signals completion); with
found_inf set nothing at all is written.

With 8-bit moments (QUANTIZED) a piece is [BLOCK / 256, 256], one quantization block per row: the codes are decoded
with their block's absmax, stepped, and encoded with each row's new absmax (moment_quantization.py). Chunks start on
block boundaries (the chunk size is a multiple of 256), so every block and its absmax belong to one program."""
from __future__ import annotations

import numpy
import torch
import triton
import triton.language as tl

from .._native import native
from ..precision import CODES_DTYPE, PARAM_UPDATE_CODES
from .adam_math import adam_update
from .moment_quantization import (QUANTIZATION_BLOCK, SIGNED_BIAS, SIGNED_MANTISSA, UNSIGNED_BIAS, UNSIGNED_MANTISSA,
                                  decode_moment, encode_moment)
from .param_update import KAHAN_SUMMATION, MASTER_WEIGHTS, STOCHASTIC_ROUNDING, param_to_store, rounding_bits
from .param_update import rounding_key as tensor_rounding_key
from .interpreter import interpreting

_LAYOUT = native().launch_table
TENSOR_COLUMNS = tl.constexpr(_LAYOUT.TENSOR_COLUMNS)
PARAM = tl.constexpr(_LAYOUT.PARAM)
GRAD = tl.constexpr(_LAYOUT.GRAD)
EXP_AVG = tl.constexpr(_LAYOUT.EXP_AVG)
EXP_AVG_SQ = tl.constexpr(_LAYOUT.EXP_AVG_SQ)
MAX_EXP_AVG_SQ = tl.constexpr(_LAYOUT.MAX_EXP_AVG_SQ)
NUMEL = tl.constexpr(_LAYOUT.NUMEL)
CHUNK_COLUMNS = tl.constexpr(_LAYOUT.CHUNK_COLUMNS)
TENSOR_INDEX = tl.constexpr(_LAYOUT.TENSOR_INDEX)
FIRST_ELEMENT = tl.constexpr(_LAYOUT.FIRST_ELEMENT)
MASTER = tl.constexpr(_LAYOUT.MASTER)
COMPENSATION = tl.constexpr(_LAYOUT.COMPENSATION)
SALT = tl.constexpr(_LAYOUT.SALT)
EXP_AVG_ABSMAX = tl.constexpr(_LAYOUT.EXP_AVG_ABSMAX)
EXP_AVG_SQ_ABSMAX = tl.constexpr(_LAYOUT.EXP_AVG_SQ_ABSMAX)
MAX_EXP_AVG_SQ_ABSMAX = tl.constexpr(_LAYOUT.MAX_EXP_AVG_SQ_ABSMAX)


# The interpreter's own bf16 conversions are wrong (loads garble subnormals, stores truncate), so there
# bf16 arrays are passed as uint16 and converted here, on the bits (the *_BITS flags; written out inline, as a
# helper call costs the interpreter ~0.5 ms). Compiled kernels never take this path.
@triton.jit
def fp32_to_bf16_bits(x):
    """Round to nearest, ties to even; a NaN stays a (quiet) NaN."""
    bits = x.to(tl.uint32, bitcast=True)
    rounded = (bits + (0x7FFF + ((bits >> 16) & 1))) >> 16
    return tl.where(x != x, (bits >> 16) | 0x0040, rounded).to(tl.uint16)


@triton.jit
def adam_piece(offsets, mask, blocks, block_mask, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, exp_avg_absmax,
               exp_avg_sq_absmax, max_exp_avg_sq_absmax, master, compensation, grad_scale,
               rounding_key, beta1, beta2, one_minus_beta1, one_minus_beta2, eps, weight_decay, decay_factor,
               step_size, bias_correction2_sqrt,
               PARAM_DTYPE: tl.constexpr, STATE_DTYPE: tl.constexpr, WEIGHT_DECAY: tl.constexpr, AMSGRAD: tl.constexpr,
               MAXIMIZE: tl.constexpr, GRAD_SCALE: tl.constexpr, UPDATE: tl.constexpr, PARAM_BITS: tl.constexpr,
               STATE_BITS: tl.constexpr, QUANTIZED: tl.constexpr):
    """Loads one piece of a chunk, updates it in fp32, stores it in the storage dtypes. (Helpers are called
    only where needed: the interpreter pays ~0.5 ms per call of a jit function, the compiler nothing.)
    With QUANTIZED (8-bit moments) the piece is [rows, QUANTIZATION_BLOCK], the moments are codes decoded with their
    block's absmax (`blocks` indexes the absmax arrays), and re-encoded with the new absmax of each row."""
    p = tl.load(param + offsets, mask=mask)
    g = tl.load(grad + offsets, mask=mask)
    m = tl.load(exp_avg + offsets, mask=mask)
    v = tl.load(exp_avg_sq + offsets, mask=mask)
    vmax = v
    if AMSGRAD:
        vmax = tl.load(max_exp_avg_sq + offsets, mask=mask)
    if PARAM_BITS:
        p = (p.to(tl.uint32) << 16).to(tl.float32, bitcast=True)
        g = (g.to(tl.uint32) << 16).to(tl.float32, bitcast=True)
    if STATE_BITS:
        m = (m.to(tl.uint32) << 16).to(tl.float32, bitcast=True)
        v = (v.to(tl.uint32) << 16).to(tl.float32, bitcast=True)
        vmax = (vmax.to(tl.uint32) << 16).to(tl.float32, bitcast=True)
    if QUANTIZED:
        if AMSGRAD:
            vmax = decode_moment(vmax, tl.load(max_exp_avg_sq_absmax + blocks, mask=block_mask), UNSIGNED_MANTISSA,
                                 UNSIGNED_BIAS, False)
        m = decode_moment(m, tl.load(exp_avg_absmax + blocks, mask=block_mask), SIGNED_MANTISSA, SIGNED_BIAS, True)
        v = decode_moment(v, tl.load(exp_avg_sq_absmax + blocks, mask=block_mask), UNSIGNED_MANTISSA, UNSIGNED_BIAS,
                          False)
        if not AMSGRAD:
            vmax = v
    p, g, m, v, vmax = p.to(tl.float32), g.to(tl.float32), m.to(tl.float32), v.to(tl.float32), vmax.to(tl.float32)
    if UPDATE == MASTER_WEIGHTS:
        p = tl.load(master + offsets, mask=mask)
    before = p
    if GRAD_SCALE:
        # GradScaler's contract (as torch's fused kernels): the step uses the unscaled fp32 gradient, and the
        # unscaled gradient is written back.
        g = tl.div_rn(g, grad_scale)
    unscaled_grad = g
    p, m, v, vmax = adam_update(p, g, m, v, vmax, beta1, beta2, one_minus_beta1, one_minus_beta2, eps,
                                weight_decay, decay_factor, step_size, bias_correction2_sqrt,
                                WEIGHT_DECAY, AMSGRAD, MAXIMIZE)
    if UPDATE == MASTER_WEIGHTS:
        tl.store(master + offsets, p, mask=mask)
    if UPDATE == STOCHASTIC_ROUNDING:
        p, _ = param_to_store(before, p, p, rounding_bits(rounding_key, offsets), UPDATE)
    if UPDATE == KAHAN_SUMMATION:
        carried = tl.load(compensation + offsets, mask=mask)
        if PARAM_BITS:
            carried = (carried.to(tl.uint32) << 16).to(tl.float32, bitcast=True)
        p, carried = param_to_store(before, p, carried.to(tl.float32), 0, UPDATE)
        if PARAM_BITS:
            carried = fp32_to_bf16_bits(carried)
        tl.store(compensation + offsets, carried.to(PARAM_DTYPE), mask=mask)
    if PARAM_BITS:
        p = fp32_to_bf16_bits(p)
        if GRAD_SCALE:
            unscaled_grad = fp32_to_bf16_bits(unscaled_grad)
    if STATE_BITS:
        m, v = fp32_to_bf16_bits(m), fp32_to_bf16_bits(v)
        if AMSGRAD:
            vmax = fp32_to_bf16_bits(vmax)
    if QUANTIZED:
        if mask is not None:  # past the tensor's end: zeros, which leave the last block's absmax alone
            m, v, vmax = tl.where(mask, m, 0.0), tl.where(mask, v, 0.0), tl.where(mask, vmax, 0.0)
        m, m_absmax = encode_moment(m, SIGNED_MANTISSA, SIGNED_BIAS, True)
        v, v_absmax = encode_moment(v, UNSIGNED_MANTISSA, UNSIGNED_BIAS, False)
        tl.store(exp_avg_absmax + blocks, m_absmax, mask=block_mask)
        tl.store(exp_avg_sq_absmax + blocks, v_absmax, mask=block_mask)
        if AMSGRAD:
            vmax, vmax_absmax = encode_moment(vmax, UNSIGNED_MANTISSA, UNSIGNED_BIAS, False)
            tl.store(max_exp_avg_sq_absmax + blocks, vmax_absmax, mask=block_mask)
    if GRAD_SCALE:
        tl.store(grad + offsets, unscaled_grad.to(PARAM_DTYPE), mask=mask)
    tl.store(param + offsets, p.to(PARAM_DTYPE), mask=mask)
    tl.store(exp_avg + offsets, m.to(STATE_DTYPE), mask=mask)
    tl.store(exp_avg_sq + offsets, v.to(STATE_DTYPE), mask=mask)
    if AMSGRAD:
        tl.store(max_exp_avg_sq + offsets, vmax.to(STATE_DTYPE), mask=mask)


@triton.jit
def block_rows(start, BLOCK: tl.constexpr):
    """With 8-bit moments, the element offsets of the piece [start, start + BLOCK) as one row per quantization block
    (chunks start on block boundaries, so rows are whole blocks), and the indices of those blocks."""
    blocks = start // QUANTIZATION_BLOCK + tl.arange(0, BLOCK // QUANTIZATION_BLOCK)
    return blocks[:, None] * QUANTIZATION_BLOCK + tl.arange(0, QUANTIZATION_BLOCK)[None, :], blocks


@triton.jit
def host_or_device(bits, pointer, ON_DEVICE: tl.constexpr):
    """A double hyperparameter: the fp32 tensor at `pointer` when ON_DEVICE (a tensor the user may update in place),
    else the host's double, passed as its 64 bits (Triton would round a Python float argument to fp32)."""
    if ON_DEVICE:
        value = tl.load(pointer).to(tl.float64)
    else:
        value = bits.to(tl.int64).to(tl.float64, bitcast=True)  # Triton passes a small integer as int32
    return value


@triton.jit(do_not_specialize=["num_tensors", "num_chunks", "lr_bits", "beta1_bits", "beta2_bits",
                               "weight_decay_bits", "seed_low", "seed_high"])
def multi_tensor_adam_kernel(
        table, num_tensors, num_chunks, steps, done_counter,
        lr_bits, lr_pointer, beta1_bits, beta1_pointer, beta2_bits, beta2_pointer, eps, weight_decay_bits,
        grad_scale, found_inf, seed_low, seed_high,
        PARAM_DTYPE: tl.constexpr, STATE_DTYPE: tl.constexpr, UPDATE: tl.constexpr, CHUNK_SIZE: tl.constexpr,
        BLOCK: tl.constexpr, ALIGNED: tl.constexpr, WEIGHT_DECAY: tl.constexpr, AMSGRAD: tl.constexpr,
        MAXIMIZE: tl.constexpr, LR_ON_DEVICE: tl.constexpr, BETA1_ON_DEVICE: tl.constexpr,
        BETA2_ON_DEVICE: tl.constexpr, GRAD_SCALE: tl.constexpr, FOUND_INF: tl.constexpr, PARAM_BITS: tl.constexpr,
        STATE_BITS: tl.constexpr, QUANTIZED: tl.constexpr):
    program = tl.program_id(0).to(tl.int64)
    programs = tl.num_programs(0).to(tl.int64)
    skip = False
    if FOUND_INF:
        skip = tl.load(found_inf) != 0  # GradScaler found inf/NaN: the whole step, counters included, is skipped
    if not skip:
        # The hyperparameters in fp64, rounded to fp32 where the C++ kernels round them (adam_math.h).
        lr = host_or_device(lr_bits, lr_pointer, LR_ON_DEVICE)
        beta1_64 = host_or_device(beta1_bits, beta1_pointer, BETA1_ON_DEVICE)
        beta2_64 = host_or_device(beta2_bits, beta2_pointer, BETA2_ON_DEVICE)
        weight_decay64 = host_or_device(weight_decay_bits, lr_pointer, False)
        beta1, beta2 = beta1_64.to(tl.float32), beta2_64.to(tl.float32)
        one_minus_beta1, one_minus_beta2 = (1.0 - beta1_64).to(tl.float32), (1.0 - beta2_64).to(tl.float32)
        log2_beta1, log2_beta2 = tl.log2(beta1_64), tl.log2(beta2_64)  # beta^t = exp2(t * log2(beta)), as in C++
        weight_decay = weight_decay64.to(tl.float32)
        decay_factor = (1.0 - lr * weight_decay64).to(tl.float32)
        scale = 1.0
        if GRAD_SCALE:
            scale = tl.load(grad_scale).to(tl.float32)
        chunk_rows = table + tl.cast(num_tensors, tl.int64) * TENSOR_COLUMNS
        # A contiguous range of chunks per program, as the CUDA kernel's blocks take them (multi_tensor_apply.cuh).
        chunks = tl.cast(num_chunks, tl.int64)
        chunk_begin = chunks * program // programs
        chunk_end = chunks * (program + 1) // programs
        # The step's constants depend on a tensor only through its counter: computed when the counter differs from
        # the last chunk's (nearly always once per program), the rounding stream when the tensor does.
        coefficients_step = tl.full((), -1.0, tl.float32)
        step_size = tl.full((), 0.0, tl.float32)
        bias_correction2_sqrt = tl.full((), 1.0, tl.float32)
        rounding_key = tl.full((), 0, tl.uint32)
        rounding_key_of = tl.full((), -1, tl.int64)
        # while, not `for ... in range(...)`: Triton 3.6's interpreter cannot take tensors as range bounds.
        chunk = chunk_begin
        while chunk < chunk_end:
            chunk_row = chunk_rows + chunk * CHUNK_COLUMNS
            tensor = tl.load(chunk_row + TENSOR_INDEX)
            first = tl.multiple_of(tl.load(chunk_row + FIRST_ELEMENT), 64)
            row = table + tensor * TENSOR_COLUMNS
            numel = tl.load(row + NUMEL)
            param = tl.load(row + PARAM).to(tl.pointer_type(PARAM_DTYPE))
            grad = tl.load(row + GRAD).to(tl.pointer_type(PARAM_DTYPE))
            exp_avg = tl.load(row + EXP_AVG).to(tl.pointer_type(STATE_DTYPE))
            exp_avg_sq = tl.load(row + EXP_AVG_SQ).to(tl.pointer_type(STATE_DTYPE))
            max_exp_avg_sq = exp_avg_sq
            if AMSGRAD:
                max_exp_avg_sq = tl.load(row + MAX_EXP_AVG_SQ).to(tl.pointer_type(STATE_DTYPE))
            master = steps  # an fp32 pointer the other modes never read
            compensation = param
            exp_avg_absmax, exp_avg_sq_absmax, max_exp_avg_sq_absmax = steps, steps, steps
            if QUANTIZED:
                exp_avg_absmax = tl.load(row + EXP_AVG_ABSMAX).to(tl.pointer_type(tl.float32))
                exp_avg_sq_absmax = tl.load(row + EXP_AVG_SQ_ABSMAX).to(tl.pointer_type(tl.float32))
                if AMSGRAD:
                    max_exp_avg_sq_absmax = tl.load(row + MAX_EXP_AVG_SQ_ABSMAX).to(tl.pointer_type(tl.float32))
            if UPDATE == MASTER_WEIGHTS:
                master = tl.load(row + MASTER).to(tl.pointer_type(tl.float32))
            if UPDATE == KAHAN_SUMMATION:
                compensation = tl.load(row + COMPENSATION).to(tl.pointer_type(PARAM_DTYPE))
            if ALIGNED:
                param = tl.multiple_of(param, 16)
                grad = tl.multiple_of(grad, 16)
                exp_avg = tl.multiple_of(exp_avg, 16)
                exp_avg_sq = tl.multiple_of(exp_avg_sq, 16)
                max_exp_avg_sq = tl.multiple_of(max_exp_avg_sq, 16)
                master = tl.multiple_of(master, 16)
                compensation = tl.multiple_of(compensation, 16)

            step32 = tl.load(steps + tensor) + 1.0  # the counter is fp32, as torch keeps it
            if step32 != coefficients_step:
                step = step32.to(tl.float64)
                bias_correction1 = 1.0 - tl.exp2(step * log2_beta1)
                bias_correction2 = 1.0 - tl.exp2(step * log2_beta2)
                step_size = (lr / bias_correction1).to(tl.float32)
                bias_correction2_sqrt = tl.sqrt(bias_correction2).to(tl.float32)  # fp64 sqrt is IEEE-rounded
                coefficients_step = step32
            if UPDATE == STOCHASTIC_ROUNDING:
                if tensor != rounding_key_of:
                    salt = tl.load(row + SALT).to(tl.uint32)
                    rounding_key = tensor_rounding_key(seed_low.to(tl.uint32), seed_high.to(tl.uint32), salt,
                                                       step32.to(tl.uint32))
                    rounding_key_of = tensor

            end = tl.minimum(first + CHUNK_SIZE, numel)
            body_end = first + (end - first) // BLOCK * BLOCK
            start = first
            while start < body_end:
                offsets = tl.multiple_of(start, BLOCK) + tl.arange(0, BLOCK)
                blocks = start  # unused without 8-bit moments (no helper call: the interpreter pays per call)
                if QUANTIZED:
                    offsets, blocks = block_rows(tl.multiple_of(start, BLOCK), BLOCK)
                adam_piece(offsets, None, blocks, None, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq,
                           exp_avg_absmax, exp_avg_sq_absmax, max_exp_avg_sq_absmax, master, compensation,
                           scale, rounding_key, beta1, beta2, one_minus_beta1, one_minus_beta2, eps, weight_decay,
                           decay_factor, step_size, bias_correction2_sqrt, PARAM_DTYPE, STATE_DTYPE, WEIGHT_DECAY,
                           AMSGRAD, MAXIMIZE, GRAD_SCALE, UPDATE, PARAM_BITS, STATE_BITS, QUANTIZED)
                start += BLOCK
            if body_end < end:
                offsets = body_end + tl.arange(0, BLOCK)
                blocks = body_end
                if QUANTIZED:
                    offsets, blocks = block_rows(body_end, BLOCK)
                adam_piece(offsets, offsets < end, blocks, blocks * QUANTIZATION_BLOCK < end, param, grad, exp_avg,
                           exp_avg_sq, max_exp_avg_sq, exp_avg_absmax, exp_avg_sq_absmax, max_exp_avg_sq_absmax,
                           master, compensation, scale, rounding_key, beta1, beta2, one_minus_beta1, one_minus_beta2,
                           eps, weight_decay, decay_factor, step_size, bias_correction2_sqrt, PARAM_DTYPE,
                           STATE_DTYPE, WEIGHT_DECAY, AMSGRAD, MAXIMIZE, GRAD_SCALE, UPDATE, PARAM_BITS, STATE_BITS,
                           QUANTIZED)
            chunk += 1

        # Every warp of the program has finished its reads of the counters (the barrier: the atomic below is issued
        # by one thread) before the program signals, acq_rel; the last program to signal increments them all.
        tl.debug_barrier()
        finished_before = tl.atomic_add(done_counter, 1, sem="acq_rel")
        if finished_before == programs - 1:
            first_tensor = 0
            while first_tensor < num_tensors:
                index = first_tensor + tl.arange(0, BLOCK)
                in_range = index < num_tensors
                tl.store(steps + index, tl.load(steps + index, mask=in_range) + 1.0, mask=in_range)
                first_tensor += BLOCK
            tl.store(done_counter, 0)  # ready for the next launch (and for CUDA graph replay)


def fp32(x: float) -> float:
    """x rounded to fp32, as the C++ kernels round the host's double-precision constants."""
    return float(numpy.float32(x))


def double_bits(x: float) -> int:
    """The 64 bits of a double, as a signed integer: how a double reaches the kernel exactly."""
    return int(numpy.float64(x).view(numpy.int64))


STORAGE_TYPES = {torch.float32: tl.float32, torch.float16: tl.float16, torch.bfloat16: tl.bfloat16,
                 CODES_DTYPE: tl.uint8}


def launch_multi_tensor_adam(launch, block: int, programs: int, num_warps: int = 8):
    """Queues one step of every tensor of `launch` (a fusedadam.backends.device.Launch) on the current stream, with
    `programs` persistent programs walking its chunks in pieces of `block` elements. Returns the compiled kernel."""
    param_bits = launch.dtype == torch.bfloat16 and interpreting()
    state_bits = launch.state_dtype == torch.bfloat16 and interpreting()
    unused = launch.steps  # a valid pointer for the tensor arguments a mode does not read

    def pointer(t):
        return t if t is not None else unused

    return multi_tensor_adam_kernel[(max(1, programs),)](
        launch.table, launch.num_tensors, launch.num_chunks, launch.steps, launch.done_counter,
        double_bits(launch.lr), pointer(launch.lr_tensor), double_bits(launch.beta1), pointer(launch.beta1_tensor),
        double_bits(launch.beta2), pointer(launch.beta2_tensor), fp32(launch.eps), double_bits(launch.weight_decay),
        pointer(launch.grad_scale), pointer(launch.found_inf), launch.rounding_seed % 2**32, launch.rounding_seed >> 32,
        PARAM_DTYPE=tl.uint16 if param_bits else STORAGE_TYPES[launch.dtype],
        STATE_DTYPE=tl.uint16 if state_bits else STORAGE_TYPES[launch.state_dtype],
        UPDATE=PARAM_UPDATE_CODES[launch.param_update], CHUNK_SIZE=launch.chunk_size, BLOCK=block,
        ALIGNED=launch.aligned16, WEIGHT_DECAY=launch.weight_decay_mode, AMSGRAD=launch.amsgrad,
        MAXIMIZE=launch.maximize, LR_ON_DEVICE=launch.lr_tensor is not None,
        BETA1_ON_DEVICE=launch.beta1_tensor is not None, BETA2_ON_DEVICE=launch.beta2_tensor is not None,
        GRAD_SCALE=launch.grad_scale is not None, FOUND_INF=launch.found_inf is not None, PARAM_BITS=param_bits,
        STATE_BITS=state_bits, QUANTIZED=launch.state_dtype == CODES_DTYPE, num_warps=num_warps,
        enable_fp_fusion=True)  # FMA contraction, as nvcc compiles
