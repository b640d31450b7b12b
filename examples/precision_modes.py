"""Train the character-level transformer of char_transformer.py six ways, from the same initial weights on the
same batches, and draw the loss curves: an fp32 model; an fp32 model whose optimizer states are bf16; and a bf16
model stepped plainly, with fp32 master weights, with stochastic rounding, and with Kahan summation.

    python examples/precision_modes.py --out examples/precision_modes.png --json examples/precision_modes.json
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from char_transformer import plot, prepare, train, training_arguments  # noqa: E402

from fusedadam import FusedAdamW  # noqa: E402

# label -> (model dtype, FusedAdamW options)
RUNS = {
    "fp32": (torch.float32, {}),
    "fp32, bf16 states": (torch.float32, dict(state_dtype=torch.bfloat16)),
    "bf16": (torch.bfloat16, {}),
    "bf16 + master weights": (torch.bfloat16, dict(master_weights=True)),
    "bf16 + stochastic rounding": (torch.bfloat16, dict(rounding="stochastic")),
    "bf16 + Kahan summation": (torch.bfloat16, dict(kahan_summation=True)),
}


def main(argv=None) -> int:
    parser = training_arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="*", choices=list(RUNS), default=list(RUNS))
    args = parser.parse_args(argv)
    data, vocab, fresh_model = prepare(args)

    options = dict(lr=args.lr, betas=(0.9, 0.98), weight_decay=0.1, backend=args.backend, rounding_seed=args.seed)
    curves = {}
    for label in args.runs:
        dtype, extra = RUNS[label]
        curves[label] = train(lambda ps: FusedAdamW(ps, **options, **extra), fresh_model(dtype), data, args, label)
    print(f"{len(data):,} characters, vocabulary {len(vocab)}, {args.steps} steps, lr {args.lr}")
    tail = max(1, args.steps // 10)
    for label, losses in curves.items():
        print(f"{label:<28} final loss {losses[-1]:.4f}, mean of the last {tail} steps "
              f"{sum(losses[-tail:]) / tail:.4f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"steps": args.steps, "lr": args.lr, "curves": curves}, f)
    if args.out:
        plot(curves, args.out, title="FusedAdamW's precision modes, char-level transformer")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
