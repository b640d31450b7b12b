"""How the updated parameter is written back, in Triton: csrc/param_update.h, operation for operation (the tests
hold both to the same float64 emulation, fusedadam.reference.emulated_adam_step). All integer work is uint32,
which wraps as the C++ does."""
import triton
import triton.language as tl

# csrc/param_update.h ParamUpdate.
ROUND_TO_NEAREST = tl.constexpr(0)
MASTER_WEIGHTS = tl.constexpr(1)
STOCHASTIC_ROUNDING = tl.constexpr(2)
KAHAN_SUMMATION = tl.constexpr(3)


@triton.jit
def mix32(h):
    """murmur3's 32-bit finalizer."""
    h ^= h >> 16
    h *= 0x85EBCA6B
    h ^= h >> 13
    h *= 0xC2B2AE35
    h ^= h >> 16
    return h


@triton.jit
def rounding_key(seed_low, seed_high, salt, step):
    """The random stream of one tensor at one step (all uint32)."""
    h = mix32(seed_low ^ 0x3C6EF372)
    h = mix32(h ^ seed_high)
    h = mix32(h ^ salt)
    return mix32(h ^ step)


@triton.jit
def rounding_bits(key, index):
    """32 random bits for each element index (int64) of the tensor whose stream is `key`."""
    low = index.to(tl.uint32)
    high = (index >> 32).to(tl.uint32)
    return mix32(key ^ (low * 0x9E3779B1) ^ (high * 0x85EBCA77))


@triton.jit
def round_to_bf16(x):
    """x rounded to the nearest bf16 value (ties to even), as fp32; NaN stays NaN."""
    bits = x.to(tl.uint32, bitcast=True)
    rounded = ((bits + (0x7FFF + ((bits >> 16) & 1))) & 0xFFFF0000).to(tl.float32, bitcast=True)
    return tl.where(x != x, x, rounded)


@triton.jit
def param_to_store(before, after, compensation, random, UPDATE: tl.constexpr):
    """csrc/param_update.h param_to_store: (value to store as the parameter, new compensation)."""
    if UPDATE == STOCHASTIC_ROUNDING:
        bits = after.to(tl.uint32, bitcast=True)
        rounded = ((bits + (random >> 16)) & 0xFFFF0000).to(tl.float32, bitcast=True)
        special = (bits & 0x7F800000) == 0x7F800000  # inf or NaN: left as is
        after = tl.where(special, after, rounded)
    if UPDATE == KAHAN_SUMMATION:
        update = (after - before) + compensation
        after = round_to_bf16(before + update)
        compensation = update - (after - before)
    return after, compensation
