"""A test kernel around the Triton kernel's 8-bit map (fusedadam/triton_kernels/moment_quantization.py): x to codes
and block absmaxes and back, as the Adam kernel does it per piece, for test_quantization.py to hold code for code
against fusedadam.quantization."""
import torch
import triton
import triton.language as tl

from fusedadam.quantization import FloatMap, num_blocks
from fusedadam.triton_kernels.moment_quantization import QUANTIZATION_BLOCK, decode_moment, encode_moment

ROWS = 4


@triton.jit
def _round_trip_kernel(x, numel, codes, absmax, decoded, MANTISSA: tl.constexpr, BIAS: tl.constexpr,
                       SIGNED: tl.constexpr, ROWS: tl.constexpr):
    blocks = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    offsets = blocks[:, None] * QUANTIZATION_BLOCK + tl.arange(0, QUANTIZATION_BLOCK)[None, :]
    mask = offsets < numel
    block_mask = blocks * QUANTIZATION_BLOCK < numel
    block_codes, block_absmax = encode_moment(tl.load(x + offsets, mask=mask, other=0.0), MANTISSA, BIAS, SIGNED)
    tl.store(codes + offsets, block_codes, mask=mask)
    tl.store(absmax + blocks, block_absmax, mask=block_mask)
    tl.store(decoded + offsets, decode_moment(block_codes, block_absmax, MANTISSA, BIAS, SIGNED), mask=mask)


def round_trip(x: torch.Tensor, fmap: FloatMap) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    codes = torch.empty(x.shape, dtype=torch.uint8)
    absmax = torch.empty(num_blocks(x.numel()), dtype=torch.float32)
    decoded = torch.empty_like(x)
    grid = (triton.cdiv(absmax.numel(), ROWS),)
    _round_trip_kernel[grid](x, x.numel(), codes, absmax, decoded, MANTISSA=fmap.mantissa_bits, BIAS=fmap.bias,
                             SIGNED=fmap.signed, ROWS=ROWS)
    return codes, absmax, decoded
