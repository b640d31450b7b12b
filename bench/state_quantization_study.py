"""Which 8-bit map for Adam's moments (issue 15)? Trains the character-level transformer of examples/ with
torch.optim.AdamW in fp32, and again with exp_avg / exp_avg_sq replaced after every step by their block-wise 8-bit
round trip under each candidate map (blocks of 256, one absmax per block, tensors under 4096 elements left in fp32),
same weights, same batches. Reports the final loss and the mean of the last 10% of steps against fp32.

    python bench/state_quantization_study.py [--steps 300] [--maps dynamic-nearest float-e4m3 ...]

Maps (each a signed one for exp_avg, an unsigned one for exp_avg_sq, applied to x / absmax of the block):
  dynamic-nearest   Dettmers et al.'s dynamic tree map (one decade per exponent, linear fractions), nearest value:
                    a search over 256 values (what bitsandbytes and torchao do)
  dynamic-bin       the same values, the code whose bin contains x: closed-form (decade, then linear index)
  float-e4m3        sign + 4-bit exponent + 3-bit mantissa (signed); 4 + 4 (unsigned), the largest code standing
                    for the absmax: round to nearest even on the float's own bits, closed-form both ways
  float-e5m3        sign + 4 + 3 (signed); 5-bit exponent + 3-bit mantissa (unsigned): more range for exp_avg_sq
  fusedadam         float-e5m3 as fusedadam.quantization computes it (fp32, bit-exact with the kernels to come)
  linear            256 evenly spaced values: the naive baseline
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from fusedadam import quantization

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
from char_transformer import prepare, train, training_arguments  # noqa: E402

BLOCK = quantization.BLOCK
SMALLEST_QUANTIZED = quantization.SMALLEST_QUANTIZED


def dynamic_values(signed: bool) -> torch.Tensor:
    """The dynamic tree map's 256 values in [-1, 1] (signed) or [0, 1]: for decade k = 0..6, 2^k (signed) or
    2^(k+1) (unsigned) linear bins over [0.1, 1] x 10^(k-6), each represented by its midpoint; plus 0 and 1."""
    values = [0.0, 1.0]
    for k in range(7):
        bins = 2 ** k if signed else 2 ** (k + 1)
        edges = torch.linspace(0.1, 1.0, bins + 1, dtype=torch.float64)
        mids = ((edges[:-1] + edges[1:]) / 2 * 10.0 ** (k - 6)).tolist()
        values += mids + ([-m for m in mids] if signed else [])
    return torch.tensor(sorted(values), dtype=torch.float64)  # 256 values: 2 x 127 + 2 signed, 254 + 2 unsigned


def nearest_in(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The value of `values` (sorted) nearest to each x."""
    idx = torch.searchsorted(values, x).clamp(1, len(values) - 1)
    below, above = values[idx - 1], values[idx]
    return torch.where((x - below) <= (above - x), below, above)


def containing_bin(values: torch.Tensor, x: torch.Tensor, signed: bool) -> torch.Tensor:
    """The dynamic map's value whose bin holds |x|: decade from comparisons, then a linear index (closed form)."""
    mag = x.abs().clamp(max=1.0)
    out = torch.zeros_like(mag)
    for k in range(7):
        low, high = 0.1 * 10.0 ** (k - 6), 10.0 ** (k - 6)
        bins = 2 ** k if signed else 2 ** (k + 1)
        inside = (mag >= low) & (mag < high)
        index = ((mag / high - 0.1) / 0.9 * bins).floor().clamp(0, bins - 1)
        out = torch.where(inside, (0.1 + (index + 0.5) * 0.9 / bins) * high, out)
    out = torch.where(mag >= 1.0, torch.ones_like(mag), out)
    return out * torch.sign(x) if signed else out


def float_code(x: torch.Tensor, exponent_bits: int, mantissa_bits: int) -> torch.Tensor:
    """|x| <= 1 on the grid of a small float (2^(exponent_bits + mantissa_bits) codes, subnormals, no infinities)
    whose largest value, (2 - 2^-m) x 2^0, stands for 1: scaled up, rounded to nearest even, scaled back. Sign kept."""
    top = 2.0 - 2.0 ** -mantissa_bits
    smallest_normal_exponent = 2 - 2 ** exponent_bits
    y = x.abs() * top
    exponent = torch.floor(torch.log2(y.clamp(min=2.0 ** smallest_normal_exponent))).clamp(max=0)
    ulp = 2.0 ** (exponent - mantissa_bits)
    return torch.round(y / ulp) * ulp / top * torch.sign(x)


def linear(x: torch.Tensor, signed: bool) -> torch.Tensor:
    if signed:
        return torch.round(x * 127) / 127
    return torch.round(x * 255) / 255


def round_trip(name: str, x: torch.Tensor, signed: bool) -> torch.Tensor:
    """x's block-wise 8-bit round trip under the named map, in float64, returned in x's dtype."""
    if name == "fusedadam":
        fmap = quantization.SIGNED if signed else quantization.UNSIGNED
        return quantization.dequantize(*quantization.quantize(x.detach().float(), fmap), fmap).to(x.dtype)
    flat = x.detach().double().reshape(-1)
    pad = (-len(flat)) % BLOCK
    blocks = torch.cat([flat, flat.new_zeros(pad)]).reshape(-1, BLOCK)
    absmax = blocks.abs().amax(dim=1, keepdim=True)
    scale = torch.where(absmax > 0, absmax, torch.ones_like(absmax))
    normalized = blocks / scale
    if name == "dynamic-nearest":
        q = nearest_in(dynamic_values(signed), normalized.reshape(-1)).reshape(normalized.shape)
    elif name == "dynamic-bin":
        q = containing_bin(dynamic_values(signed), normalized, signed)
    elif name == "float-e4m3":
        q = float_code(normalized, 4, 3 if signed else 4)
    elif name == "float-e5m3":
        q = float_code(normalized, 4 if signed else 5, 3)
    elif name == "linear":
        q = linear(normalized, signed)
    else:
        raise ValueError(name)
    return (q * scale).reshape(-1)[: len(flat)].reshape(x.shape).to(x.dtype)


def quantizing(map_name: str | None, **options):
    """A torch AdamW whose moments take their 8-bit round trip after every step (None: plain fp32)."""
    def make(params):
        optimizer = torch.optim.AdamW(params, **options)
        if map_name is not None:
            def requantize(opt, args, kwargs):
                for state in opt.state.values():
                    if state["exp_avg"].numel() >= SMALLEST_QUANTIZED:
                        state["exp_avg"].copy_(round_trip(map_name, state["exp_avg"], signed=True))
                        state["exp_avg_sq"].copy_(round_trip(map_name, state["exp_avg_sq"], signed=False))
            optimizer.register_step_post_hook(requantize)
        return optimizer
    return make


def main(argv=None) -> int:
    parser = training_arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--maps", nargs="*", default=["dynamic-nearest", "dynamic-bin", "float-e4m3", "float-e5m3",
                                                      "fusedadam", "linear"])
    args = parser.parse_args(argv)
    data, vocab, fresh_model = prepare(args)
    options = dict(lr=args.lr, betas=(0.9, 0.98), weight_decay=0.1)
    curves = {"fp32": train(quantizing(None, **options), fresh_model(), data, args, "fp32")}
    for name in args.maps:
        curves[name] = train(quantizing(name, **options), fresh_model(), data, args, name)
    tail = max(1, args.steps // 10)
    base_final, base_tail = curves["fp32"][-1], sum(curves["fp32"][-tail:]) / tail
    print(f"{args.steps} steps, lr {args.lr}; final loss and mean of the last {tail} steps, against fp32 states")
    for name, losses in curves.items():
        final, mean = losses[-1], sum(losses[-tail:]) / tail
        print(f"{name:<16} final {final:.4f} ({final / base_final - 1:+.2%})   last {tail}: {mean:.4f} "
              f"({mean / base_tail - 1:+.2%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
