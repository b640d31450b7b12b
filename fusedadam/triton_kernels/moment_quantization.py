"""The 8-bit maps of Adam's moments in Triton: csrc/moment_quantization.h, operation for operation (fusedadam/
quantization.py is the readable definition, with the reasons for the map; the tests hold all three to the same codes).

A piece of a chunk is [rows, QUANTIZATION_BLOCK] elements, one quantization block per row, so a block's absmax is a
reduction along the row and the kernel never needs another program's elements. A map is given by its mantissa bits,
exponent bias and sign (constexprs), every step one IEEE fp32 operation or integer arithmetic on the bits. (Powers of
two are written 2 ** n, and tensors stand left of constexprs: the interpreter has no `int << constexpr`, and
its `constexpr + tensor` is a constexpr.)"""
import triton
import triton.language as tl

from ..quantization import BLOCK, SIGNED, UNSIGNED

QUANTIZATION_BLOCK = tl.constexpr(BLOCK)
# (mantissa bits, exponent bias, signed) of exp_avg's map and of exp_avg_sq's (and max_exp_avg_sq's).
SIGNED_MANTISSA, SIGNED_BIAS = tl.constexpr(SIGNED.mantissa_bits), tl.constexpr(SIGNED.bias)
UNSIGNED_MANTISSA, UNSIGNED_BIAS = tl.constexpr(UNSIGNED.mantissa_bits), tl.constexpr(UNSIGNED.bias)


@triton.jit
def map_top(MANTISSA: tl.constexpr):
    """The map's largest value, 2 - 2^-m, which stands for the block's absmax (exact in fp32)."""
    return 2.0 - 1.0 / 2 ** MANTISSA


@triton.jit
def decode_moment(codes, absmax, MANTISSA: tl.constexpr, BIAS: tl.constexpr, SIGNED: tl.constexpr):
    """The fp32 values of uint8 codes [rows, QUANTIZATION_BLOCK] whose blocks have the fp32 absmax [rows]."""
    code = codes.to(tl.uint32)
    magnitude = code & 0x7F if SIGNED else code
    # Moved to fp32's fields and rebiased, the code's bits are its value when its exponent field is not 0; when it is
    # 0, the same bits one binade up, less that binade's leading one (2^(1 - bias)), are the subnormal value.
    normal = (magnitude << (23 - MANTISSA)) + ((127 - BIAS) << 23)
    smallest_normal = tl.zeros_like(code) + ((128 - BIAS) << 23)
    subnormal = ((normal + 2 ** 23).to(tl.float32, bitcast=True)
                 - smallest_normal.to(tl.float32, bitcast=True))
    value = tl.where(magnitude >= 2 ** MANTISSA, normal.to(tl.float32, bitcast=True), subnormal)
    if SIGNED:
        value = tl.where((code & 0x80) != 0, -value, value)
    inverse_scale = tl.div_rn(absmax, tl.zeros_like(absmax) + map_top(MANTISSA))
    return value * inverse_scale[:, None]


@triton.jit
def encode_moment(x, MANTISSA: tl.constexpr, BIAS: tl.constexpr, SIGNED: tl.constexpr):
    """(uint8 codes [rows, QUANTIZATION_BLOCK], fp32 absmax [rows]) of the fp32 moments x, elements past a tensor's
    end set to 0. The absmax is an integer max of the magnitudes' bits, so a NaN anywhere in a block propagates."""
    magnitude_bits = x.to(tl.uint32, bitcast=True) & 0x7FFFFFFF
    absmax = tl.max(magnitude_bits, axis=1).to(tl.float32, bitcast=True)
    scale = tl.where(absmax == 0.0, 0.0, tl.div_rn(tl.zeros_like(absmax) + map_top(MANTISSA), absmax))
    y = tl.abs(x) * scale[:, None]
    # Normal y: its top MANTISSA mantissa bits rounded to nearest even, a carry running into the exponent, then the
    # exponent moved from fp32's bias to the map's. NaN and inf land past the largest code and are clamped.
    bits = y.to(tl.uint32, bitcast=True)
    DROP: tl.constexpr = 23 - MANTISSA
    normal = ((bits + (2 ** (DROP - 1) - 1) + ((bits >> DROP) & 1)) >> DROP) - ((127 - BIAS) << MANTISSA)
    # Subnormal y: rint(y / step) by one fp32 addition of y / step (exact) to 2^23, whose ulp is 1. The division is a
    # multiplication by 2^(bias + m - 1): with y + step * 2^23 the compiler would fuse y's multiplication into the add
    # (an FMA, rounding the exact product instead of y); fused with this exact one, the sum is the same.
    smallest_normal = (tl.zeros_like(bits) + ((128 - BIAS) << 23)).to(tl.float32, bitcast=True)
    inverse_step = (tl.zeros_like(bits) + ((126 + BIAS + MANTISSA) << 23)).to(tl.float32, bitcast=True)
    below = y < smallest_normal
    subnormal = (tl.where(below, y, 0.0) * inverse_step + 8388608.0).to(tl.uint32, bitcast=True)
    code = tl.where(below, subnormal - 0x4B000000, normal)
    code = tl.minimum(code, 2 ** (8 - SIGNED) - 1)
    if SIGNED:
        code = code | tl.where(x < 0.0, 0x80, 0).to(tl.uint32)
    return code.to(tl.uint8), absmax
