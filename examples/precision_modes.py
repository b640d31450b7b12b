"""Train the character-level transformer of char_transformer.py seven ways, from the same initial weights on the
same batches, and draw the loss curves: an fp32 model; an fp32 model whose optimizer states are bf16, and one whose
states are 8-bit; and a bf16 model stepped plainly, with fp32 master weights, with stochastic rounding, and with
Kahan summation.

    python examples/precision_modes.py --out examples/precision_modes.png --json examples/precision_modes.json

About 25 minutes on 2 CPU cores: bf16 matrix products are slow there (fp32 runs take ~20 s each). The chart
can be redrawn from the JSON with --from-json.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from char_transformer import prepare, train, training_arguments  # noqa: E402

from fusedadam import FusedAdamW  # noqa: E402

# label -> (model dtype, FusedAdamW options)
RUNS = {
    "fp32": (torch.float32, {}),
    "fp32, bf16 states": (torch.float32, dict(state_dtype=torch.bfloat16)),
    "fp32, 8-bit states": (torch.float32, dict(state_dtype="8bit")),
    "bf16": (torch.bfloat16, {}),
    "bf16 + master weights": (torch.bfloat16, dict(master_weights=True)),
    "bf16 + stochastic rounding": (torch.bfloat16, dict(rounding="stochastic")),
    "bf16 + Kahan summation": (torch.bfloat16, dict(kahan_summation=True)),
}


def plot_against_fp32(curves: dict[str, list[float]], path: str, window: int = 25) -> None:
    """The loss curves, and below them each run's loss minus the fp32 run's on the same batch, averaged over
    `window` steps: every run sees the same batches, so the difference is the optimizer's doing."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6.5), sharex=True, height_ratios=(3, 2))
    styles = ("-", "--", (0, (1, 1)), ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)))
    reference = curves.get("fp32")
    for (label, losses), style in zip(curves.items(), styles * len(curves)):
        steps = range(1, len(losses) + 1)
        top.plot(steps, losses, linestyle=style, label=label, linewidth=1.0)
        if reference is not None:
            gap = torch.tensor(losses) - torch.tensor(reference)
            smoothed = gap.unfold(0, window, 1).mean(1) if len(gap) >= window else gap
            bottom.plot(range(len(losses) - len(smoothed) + 1, len(losses) + 1), smoothed, linestyle=style,
                        label=label, linewidth=1.2)
    top.set_ylabel("training loss (nats)")
    top.set_title("FusedAdamW's precision modes, char-level transformer, same batches")
    top.legend(fontsize=8)
    bottom.axhline(0, color="black", linewidth=0.6)
    bottom.set_xlabel("step")
    bottom.set_ylabel(f"loss - fp32 loss\n({window}-step mean)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main(argv=None) -> int:
    parser = training_arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="*", choices=list(RUNS), default=list(RUNS))
    parser.add_argument("--from-json", metavar="PATH", help="draw the curves saved by an earlier --json run")
    args = parser.parse_args(argv)

    if args.from_json:
        with open(args.from_json) as f:
            saved = json.load(f)
        curves = saved["curves"]
        print(f"{saved['steps']} steps, lr {saved['lr']} (from {args.from_json})")
    else:
        data, vocab, fresh_model = prepare(args)
        options = dict(lr=args.lr, betas=(0.9, 0.98), weight_decay=0.1, backend=args.backend,
                       rounding_seed=args.seed)
        curves = {}
        for label in args.runs:
            dtype, extra = RUNS[label]
            curves[label] = train(lambda ps: FusedAdamW(ps, **options, **extra), fresh_model(dtype), data, args,
                                  label)
        print(f"{len(data):,} characters, vocabulary {len(vocab)}, {args.steps} steps, lr {args.lr}")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"steps": args.steps, "lr": args.lr, "curves": curves}, f)
    steps = len(next(iter(curves.values())))
    tail = max(1, steps // 10)
    for label, losses in curves.items():
        print(f"{label:<28} final loss {losses[-1]:.4f}, mean of the last {tail} steps "
              f"{sum(losses[-tail:]) / tail:.4f}")
    if args.out:
        plot_against_fp32(curves, args.out)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
