"""The 8-bit maps for Adam's moments (issue 15), block-wise, exactly as the kernels are to compute them.

A moment tensor is cut into blocks of BLOCK elements (the last one may be shorter). Each block keeps its absmax
(fp32) and one byte per element: the element divided by the absmax, on the grid of a small float whose largest
value stands for the absmax. exp_avg, signed, uses 1 sign + 4 exponent + 3 mantissa bits (SIGNED); exp_avg_sq,
never negative, uses 5 exponent + 3 mantissa bits (UNSIGNED): more range, because a second moment that rounds to
zero under a first moment that does not turns m / (sqrt(v) + eps) into m / eps.

Why a small float and not the dynamic tree map of Dettmers et al. (ICLR 2022), which bitsandbytes and torchao use:
the same loss on the model of bench/state_quantization_study.py (bench/NOTES.md), and a closed form both ways. The
code of an element is its fp32 bits rounded to nearest even with integer arithmetic, no search over 256 values, and
every step is one IEEE operation, so the CPU, CUDA and Triton kernels and this module agree to the bit:

    scale = top / absmax                    (fp32 division, once per block)
    y = |x| * scale                         (fp32 multiplication; y <= top up to one rounding)
    code = y's bits rounded to `mantissa_bits` bits (normal y), or rint(y / smallest step) (subnormal y), clamped
    value = grid(code) * (absmax / top)     (fp32; the block's largest element comes back within an ulp)

A block whose absmax is 0 stores code 0 everywhere. A non-finite element makes its block's absmax non-finite (a NaN
propagates) and the whole block decodes to NaN or inf: the moments are already meaningless there, and torch's own
step would have put NaN into the parameter.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

BLOCK = 256
# Tensors with fewer elements keep 32-bit moments (as bitsandbytes does): their absmax and rounding would cost more
# than the bytes they save.
SMALLEST_QUANTIZED = 4096


@dataclass(frozen=True)
class FloatMap:
    """A float of exponent_bits + mantissa_bits (+ a sign bit when signed) in one byte, with subnormals, no
    infinities and no NaN; its largest value, (2 - 2^-m) * 2^0, stands for the block's absmax."""

    exponent_bits: int
    mantissa_bits: int
    signed: bool

    def __post_init__(self):
        if self.exponent_bits + self.mantissa_bits + self.signed != 8:
            raise ValueError("a map fills exactly one byte")

    @property
    def bias(self) -> int:
        """Exponent field e means 2^(e - bias); the largest field, 2^exponent_bits - 1, is the binade [1, 2)."""
        return 2 ** self.exponent_bits - 1

    @property
    def top(self) -> float:
        return 2.0 - 2.0 ** -self.mantissa_bits

    @property
    def max_magnitude_code(self) -> int:
        return 2 ** (self.exponent_bits + self.mantissa_bits) - 1

    @property
    def subnormal_step(self) -> float:
        """The grid's spacing below the smallest normal 2^(1 - bias)."""
        return 2.0 ** (1 - self.bias - self.mantissa_bits)


SIGNED = FloatMap(exponent_bits=4, mantissa_bits=3, signed=True)     # exp_avg
UNSIGNED = FloatMap(exponent_bits=5, mantissa_bits=3, signed=False)  # exp_avg_sq (and max_exp_avg_sq)


def num_blocks(numel: int) -> int:
    return -(-numel // BLOCK)


def _blocks(x: torch.Tensor) -> torch.Tensor:
    """x flattened and zero-padded to whole blocks, [num_blocks, BLOCK]."""
    flat = x.reshape(-1)
    pad = num_blocks(flat.numel()) * BLOCK - flat.numel()
    return torch.cat([flat, flat.new_zeros(pad)]).reshape(-1, BLOCK)


def block_absmax(x: torch.Tensor) -> torch.Tensor:
    """Each block's largest magnitude, fp32, a NaN anywhere in the block propagating."""
    if x.dtype != torch.float32:
        raise TypeError(f"block_absmax takes fp32 moments, got {x.dtype}")
    return _blocks(x).abs().amax(dim=1)


def encode_magnitudes(y: torch.Tensor, fmap: FloatMap) -> torch.Tensor:
    """The magnitude code (int32, 0..max_magnitude_code) of each y = |x| * scale >= 0, fp32: nearest grid value,
    ties to even. A NaN y (a non-finite block) gets the largest code; its block decodes to NaN anyway."""
    m = fmap.mantissa_bits
    drop = 23 - m
    bits = y.view(torch.int32)
    # Normal: keep the top m mantissa bits, rounding the dropped ones to nearest even; a carry runs into the exponent,
    # which is the next binade's first code. Then move the exponent from fp32's bias (127) to the map's.
    lsb = (bits >> drop) & 1
    normal = ((bits + ((1 << (drop - 1)) - 1) + lsb) >> drop) - ((127 - fmap.bias) << m)
    # Subnormal: a multiple of the step; y / step is exact (a power of two), rint rounds half to even. The value just
    # under the smallest normal can round up to 2^m, which is that normal's code.
    subnormal = torch.round(y / fmap.subnormal_step).to(torch.int32)
    smallest_normal = 2.0 ** (1 - fmap.bias)
    codes = torch.where(y >= smallest_normal, normal, subnormal)
    return torch.where(torch.isnan(y), fmap.max_magnitude_code, codes.clamp(0, fmap.max_magnitude_code))


def decode_magnitudes(codes: torch.Tensor, fmap: FloatMap) -> torch.Tensor:
    """The grid value (fp32, exact) of each magnitude code."""
    m = fmap.mantissa_bits
    codes = codes.to(torch.int32)
    exponent = codes >> m
    mantissa = codes & ((1 << m) - 1)
    # Normal: (1 + mantissa / 2^m) * 2^(exponent - bias), assembled as fp32 bits; exponent 0 is the subnormal range.
    normal = (((exponent - fmap.bias + 127) << 23) | (mantissa << (23 - m))).view(torch.float32)
    subnormal = mantissa.to(torch.float32) * fmap.subnormal_step
    return torch.where(exponent > 0, normal, subnormal)


def quantize(x: torch.Tensor, fmap: FloatMap) -> tuple[torch.Tensor, torch.Tensor]:
    """(codes, absmax): uint8 codes shaped like x and fp32 absmax per block. x must be fp32."""
    absmax = block_absmax(x)
    top = torch.tensor(fmap.top, dtype=torch.float32)
    scale = top / absmax  # inf for an all-zero block: y is then 0 * inf = NaN, handled below
    blocks = _blocks(x)
    y = blocks.abs() * scale[:, None]
    magnitude = encode_magnitudes(torch.where((absmax == 0)[:, None], torch.zeros_like(y), y), fmap)
    if fmap.signed:
        magnitude = magnitude | torch.where(blocks < 0, 0x80, 0)
    codes = magnitude.reshape(-1)[: x.numel()].to(torch.uint8).reshape(x.shape)
    return codes, absmax


def dequantize(codes: torch.Tensor, absmax: torch.Tensor, fmap: FloatMap) -> torch.Tensor:
    """The fp32 moments the codes and block absmaxes stand for, shaped like codes."""
    if codes.dtype != torch.uint8 or absmax.dtype != torch.float32:
        raise TypeError(f"dequantize takes uint8 codes and fp32 absmax, got {codes.dtype} and {absmax.dtype}")
    if absmax.numel() != num_blocks(codes.numel()):
        raise ValueError(f"{codes.numel()} codes need {num_blocks(codes.numel())} absmax values, got {absmax.numel()}")
    raw = _blocks(codes.to(torch.int32))
    magnitude_mask = 0x7F if fmap.signed else 0xFF
    values = decode_magnitudes(raw & magnitude_mask, fmap)
    if fmap.signed:
        values = torch.where((raw & 0x80) != 0, -values, values)
    inverse_scale = absmax / torch.tensor(fmap.top, dtype=torch.float32)
    return (values * inverse_scale[:, None]).reshape(-1)[: codes.numel()].reshape(codes.shape)


def memory_order(t: torch.Tensor) -> torch.Tensor:
    """A dense tensor's elements as a 1-d view in the order they lie in memory: the order in which the kernels cut a
    moment into blocks, whatever the parameter's strides."""
    return t.as_strided((t.numel(),), (1,), t.storage_offset())


def quantize_moment(x: torch.Tensor, fmap: FloatMap) -> tuple[torch.Tensor, torch.Tensor]:
    """A dense moment (any float dtype) as 8-bit state: uint8 codes with x's shape and strides, and the fp32 absmax of
    each block of x in memory order."""
    codes = torch.empty_like(x, dtype=torch.uint8)
    flat_codes, absmax = quantize(memory_order(x).float(), fmap)
    memory_order(codes).copy_(flat_codes)
    return codes, absmax


def dequantize_moment(codes: torch.Tensor, absmax: torch.Tensor, fmap: FloatMap) -> torch.Tensor:
    """The fp32 moment that dense 8-bit state stands for, with the codes' shape and strides."""
    values = torch.empty_like(codes, dtype=torch.float32)
    memory_order(values).copy_(dequantize(memory_order(codes), absmax.reshape(-1).float(), fmap))
    return values
