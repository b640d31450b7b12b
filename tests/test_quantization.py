"""The 8-bit maps of the moments (fusedadam.quantization): the grid, nearest-even rounding against a brute-force
search, the block structure, the error bound, and what zero and non-finite blocks become; and the kernels' own
spellings of the map (csrc/moment_quantization.h, fusedadam/triton_kernels/moment_quantization.py) code for code
against this module."""
import pytest
import torch

from fusedadam._native import try_native
from fusedadam.quantization import (BLOCK, SIGNED, UNSIGNED, FloatMap, decode_magnitudes, dequantize,
                                    encode_magnitudes, num_blocks, quantize)

MAPS = {"signed-e4m3": SIGNED, "unsigned-e5m3": UNSIGNED}


def require_native():
    native = try_native()
    if native is None:
        pytest.fail("the native module fusedadam._C is not built: build it (README, Building) to run this test")
    return native


def grid(fmap: FloatMap) -> torch.Tensor:
    """Every magnitude the map can hold, in code order, computed in float64 from the definition (not the module)."""
    values = []
    for code in range(fmap.max_magnitude_code + 1):
        exponent, mantissa = code >> fmap.mantissa_bits, code & ((1 << fmap.mantissa_bits) - 1)
        if exponent == 0:
            values.append(mantissa * fmap.subnormal_step)
        else:
            values.append((1 + mantissa / 2 ** fmap.mantissa_bits) * 2.0 ** (exponent - fmap.bias))
    return torch.tensor(values, dtype=torch.float64)


def nearest_even_code(y: torch.Tensor, fmap: FloatMap) -> torch.Tensor:
    """The code of the grid value nearest to each y (float64 search over all of them), a tie going to the even code;
    above the largest value, the largest code."""
    values = grid(fmap)
    distance = (y.double()[:, None] - values[None, :]).abs()
    best = distance.min(dim=1, keepdim=True).values
    tied = distance == best
    codes = torch.arange(len(values))
    even_tied = tied & (codes % 2 == 0)[None, :]
    choice = torch.where(even_tied.any(dim=1), even_tied.int().argmax(dim=1), tied.int().argmax(dim=1))
    return choice


@pytest.mark.parametrize("fmap", MAPS.values(), ids=MAPS.keys())
def test_the_grid_is_increasing_and_every_code_encodes_back_to_itself(fmap):
    codes = torch.arange(fmap.max_magnitude_code + 1, dtype=torch.int32)
    values = decode_magnitudes(codes, fmap)
    assert torch.equal(values.double(), grid(fmap))
    assert (values[1:] > values[:-1]).all()
    assert values[-1].item() == fmap.top
    assert torch.equal(encode_magnitudes(values, fmap), codes)


@pytest.mark.parametrize("fmap", MAPS.values(), ids=MAPS.keys())
def test_encoding_rounds_to_the_nearest_grid_value_ties_to_even(fmap):
    values = grid(fmap)
    midpoints = ((values[1:] + values[:-1]) / 2).float()  # exact in fp32: the ties
    gen = torch.Generator().manual_seed(0)
    # Every binade of the map and below it, uniformly within each.
    exponents = torch.randint(-fmap.bias - fmap.mantissa_bits - 2, 1, (20000,), generator=gen).double()
    spread = (torch.rand(20000, generator=gen, dtype=torch.float64) + 1) * 2.0 ** exponents
    y = torch.cat([midpoints, midpoints.nextafter(torch.tensor(0.0)), midpoints.nextafter(torch.tensor(2.0)),
                   spread.float().clamp(max=fmap.top), torch.tensor([0.0, fmap.top])])
    assert torch.equal(encode_magnitudes(y, fmap).long(), nearest_even_code(y, fmap))


@pytest.mark.parametrize("fmap", MAPS.values(), ids=MAPS.keys())
def test_a_value_past_the_grid_keeps_the_largest_code(fmap):
    # y = |x| * (top / absmax) exceeds top by at most two roundings, which round back to top; a kernel that let more
    # through must still not write a code of the next byte's sign or exponent.
    past = torch.tensor([fmap.top + 2.0 ** -fmap.mantissa_bits / 2, 2.0, 3.0, 1e30], dtype=torch.float32)
    assert encode_magnitudes(past, fmap).tolist() == [fmap.max_magnitude_code] * 4


def test_codes_by_hand():
    # absmax 1: scale 1.875. 1 -> 1.875, the largest code; 0.5 -> 1.875 * 2^-1 (exponent field 14, mantissa 7);
    # -0.25 -> sign bit + field 13, mantissa 7; 0 -> 0.
    codes, absmax = quantize(torch.tensor([1.0, 0.5, -0.25, 0.0]), SIGNED)
    assert codes.tolist() == [0x7F, (14 << 3) | 7, 0x80 | (13 << 3) | 7, 0]
    assert absmax.tolist() == [1.0]
    assert dequantize(codes, absmax, SIGNED).tolist() == [1.0, 0.5, -0.25, 0.0]
    # exp_avg_sq's map: 2^-20 of the absmax is normal there (field 31 - 20 = 11, mantissa 7).
    codes, absmax = quantize(torch.tensor([4.0, 4.0 * 2.0 ** -20]), UNSIGNED)
    assert codes.tolist() == [0xFF, (11 << 3) | 7]


@pytest.mark.parametrize("numel", [1, BLOCK - 1, BLOCK, BLOCK + 1, 5 * BLOCK + 77])
@pytest.mark.parametrize("fmap", MAPS.values(), ids=MAPS.keys())
def test_round_trip_within_half_a_step_of_the_grid_block_by_block(fmap, numel):
    gen = torch.Generator().manual_seed(numel)
    # Magnitudes over ten decades, so that blocks hold both normal and subnormal codes.
    x = torch.randn(numel, generator=gen) * 10.0 ** (-10 * torch.rand(numel, generator=gen))
    if not fmap.signed:
        x = x.abs()
    codes, absmax = quantize(x, fmap)
    assert codes.dtype == torch.uint8 and codes.shape == x.shape
    assert absmax.dtype == torch.float32 and absmax.numel() == num_blocks(numel)
    back = dequantize(codes, absmax, fmap).double()
    xd = x.double()
    block_of = torch.arange(numel) // BLOCK
    unit = absmax.double()[block_of] / fmap.top  # what one grid unit is worth in this block
    y = xd.abs() / unit
    # Half the grid's spacing where y falls, relative (normal) or absolute (subnormal), plus fp32 slop.
    spacing = torch.where(y >= 2.0 ** (1 - fmap.bias), 2.0 ** (torch.floor(torch.log2(y)) - fmap.mantissa_bits),
                          torch.full_like(y, fmap.subnormal_step))
    bound = (spacing / 2 + y * 2.0 ** -22) * unit
    assert ((back - xd).abs() <= bound).all(), ((back - xd).abs() / bound).max()
    assert (torch.sign(back) * torch.sign(xd) >= 0).all()
    largest = xd.abs().reshape(-1)[:].new_zeros(num_blocks(numel))
    largest = largest.scatter_reduce(0, block_of, xd.abs(), "amax")
    assert torch.equal(absmax.double(), largest)


def test_an_all_zero_block_stores_zeros_beside_a_live_one():
    x = torch.cat([torch.zeros(BLOCK), torch.linspace(-1, 1, BLOCK)])
    codes, absmax = quantize(x, SIGNED)
    assert absmax.tolist() == [0.0, 1.0]
    assert (codes[:BLOCK] == 0).all()
    back = dequantize(codes, absmax, SIGNED)
    assert (back[:BLOCK] == 0).all() and torch.isfinite(back).all()


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_moment_spoils_its_own_block_only(bad):
    x = torch.linspace(0.1, 1, 3 * BLOCK)
    x[BLOCK + 5] = bad
    codes, absmax = quantize(x, UNSIGNED)
    back = dequantize(codes, absmax, UNSIGNED)
    assert torch.isfinite(back[:BLOCK]).all() and torch.isfinite(back[2 * BLOCK:]).all()
    assert not torch.isfinite(back[BLOCK:2 * BLOCK]).any()


def test_bad_inputs_are_refused_with_what_was_given():
    with pytest.raises(TypeError, match="fp32"):
        quantize(torch.zeros(10, dtype=torch.float16), SIGNED)
    codes, absmax = quantize(torch.ones(300), SIGNED)
    with pytest.raises(ValueError, match="300 codes need 2 absmax values, got 1"):
        dequantize(codes, absmax[:1], SIGNED)
    with pytest.raises(TypeError, match="uint8"):
        dequantize(codes.to(torch.int32), absmax, SIGNED)
    with pytest.raises(ValueError, match="one byte"):
        FloatMap(exponent_bits=4, mantissa_bits=4, signed=True)


def native_round_trip(x: torch.Tensor, fmap: FloatMap) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """csrc/moment_quantization.h on x: (codes, absmax, decoded)."""
    native = require_native()
    codes = torch.empty(x.shape, dtype=torch.uint8)
    absmax = torch.empty(num_blocks(x.numel()), dtype=torch.float32)
    decoded = torch.empty_like(x)
    native.quantize_moments(x.data_ptr(), x.numel(), fmap.signed, codes.data_ptr(), absmax.data_ptr())
    native.dequantize_moments(codes.data_ptr(), absmax.data_ptr(), x.numel(), fmap.signed, decoded.data_ptr())
    return codes, absmax, decoded


def triton_round_trip(x: torch.Tensor, fmap: FloatMap) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """fusedadam/triton_kernels/moment_quantization.py on x (Triton's interpreter): (codes, absmax, decoded)."""
    from triton_round_trip import round_trip

    return round_trip(x, fmap)


ROUND_TRIPS = {"native": native_round_trip, "triton": triton_round_trip}


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.equal(a.view(torch.int32), b.view(torch.int32))


def whole_blocks(*pieces: torch.Tensor) -> torch.Tensor:
    """The pieces one after the other, each starting a block (zero-padded to whole blocks)."""
    return torch.cat([torch.cat([p, p.new_zeros(num_blocks(p.numel()) * BLOCK - p.numel())]) for p in pieces])


def scaled_ties(fmap: FloatMap) -> list[torch.Tensor]:
    """Blocks whose absmax is not the map's top, with elements x whose y = |x| * scale rounds, in fp32, onto a tie
    between two subnormal codes while the exact product lies beside it (above and below, for every tie): a kernel that
    fuses the multiplication into its rounding (a compiler's FMA contraction) writes the other code for half of them."""
    blocks, sides = [], set()
    for absmax in torch.linspace(2.0, 8.0, 97)[1:]:  # until every tie is reached from both sides
        absmax = absmax.reshape(1)
        scale = torch.tensor(fmap.top) / absmax
        elements, new_sides = [absmax], set()
        for k in range(2 ** fmap.mantissa_bits):
            tie = torch.tensor([(k + 0.5) * fmap.subnormal_step])
            near = ((tie / scale).view(torch.int32) + torch.arange(-64, 65, dtype=torch.int32)).view(torch.float32)
            exact = near.double() * scale.double()
            lands = (exact.float() == tie) & (exact != tie.double())
            elements.append(near[lands])
            new_sides |= {(k, bool(above)) for above in exact[lands] > tie.double()}
        if new_sides - sides:
            blocks.append(torch.cat(elements))
            sides |= new_sides
    assert len(sides) == 2 * 2 ** fmap.mantissa_bits, "some tie is not reached from both sides"
    return blocks


@pytest.mark.parametrize("round_trip", ROUND_TRIPS.values(), ids=ROUND_TRIPS.keys())
@pytest.mark.parametrize("fmap", MAPS.values(), ids=MAPS.keys())
def test_the_kernels_maps_write_the_same_codes_and_read_the_same_values(fmap, round_trip):
    """The kernels' spellings of the map and this module, code for code and bit for bit: every tie of the grid (in
    blocks whose absmax is the map's top, so that they stay ties), magnitudes over twelve decades, an all-zero block,
    blocks holding a NaN and an inf, and a short last block. And ties that only the product y = |x| * scale, rounded
    to fp32 before the grid's rounding, reaches."""
    assert require_native().quantization_block() == BLOCK
    gen = torch.Generator().manual_seed(1)
    values = grid(fmap)
    ties = ((values[1:] + values[:-1]) / 2).float()
    top = torch.tensor([fmap.top])
    tie_blocks = [torch.cat([top, chunk]) for chunk in ties.split(BLOCK - 1)]
    spread = torch.randn(40 * BLOCK, generator=gen) * 10.0 ** (-12 * torch.rand(40 * BLOCK, generator=gen))
    with_nan, with_inf = torch.linspace(-3, 3, BLOCK), torch.linspace(-3, 3, BLOCK)
    with_nan[7], with_inf[BLOCK - 1] = float("nan"), float("inf")
    pieces = [*tie_blocks, *[-b for b in tie_blocks], *scaled_ties(fmap), *[-b for b in scaled_ties(fmap)], spread,
              torch.zeros(BLOCK), with_nan, with_inf]
    x = torch.cat([whole_blocks(*pieces), spread[:37]])
    if not fmap.signed:
        x = x.abs()
    codes, absmax, decoded = round_trip(x, fmap)
    expected_codes, expected_absmax = quantize(x, fmap)
    assert (expected_absmax[: len(tie_blocks)] == fmap.top).all()  # the ties are ties
    assert torch.equal(codes, expected_codes)
    assert same_bits(absmax, expected_absmax)
    assert same_bits(decoded, dequantize(expected_codes, expected_absmax, fmap))
