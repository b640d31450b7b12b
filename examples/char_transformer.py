"""Train a small character-level transformer twice, with torch.optim.AdamW and with fusedadam.FusedAdamW,
from the same initial weights on the same batches, and draw both loss curves.

The text is Python's own standard library source (it ships with every Python), so the example needs no
download. On a 2-core CPU the default run takes about a minute per optimizer:

    python examples/char_transformer.py --out examples/loss_curves.png
"""
from __future__ import annotations

import argparse
import inspect
import json
import math
import sys
import time

import torch
from torch import nn

from fusedadam import FusedAdamW

CORPUS_MODULES = ("textwrap", "string", "functools", "collections", "argparse", "dataclasses")


def corpus() -> str:
    return "\n".join(inspect.getsource(__import__(name)) for name in CORPUS_MODULES)


class CharTransformer(nn.Module):
    def __init__(self, vocab: int, context: int, width: int = 128, layers: int = 2, heads: int = 4):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.position = nn.Parameter(torch.randn(context, width) * 0.02)
        block = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab)
        self.register_buffer("causal", nn.Transformer.generate_square_subsequent_mask(context), persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens) + self.position[: tokens.shape[1]]
        x = self.blocks(x, mask=self.causal[: tokens.shape[1], : tokens.shape[1]], is_causal=True)
        return self.head(self.norm(x))


def batches(data: torch.Tensor, steps: int, batch: int, context: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        start = torch.randint(0, len(data) - context - 1, (batch,), generator=generator)
        window = torch.stack([data[s: s + context + 1] for s in start.tolist()])
        yield window[:, :-1], window[:, 1:]


def train(make_optimizer, model: nn.Module, data: torch.Tensor, args, label: str) -> list[float]:
    optimizer = make_optimizer(model.parameters())
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / 20) * 0.5 * (1 + math.cos(math.pi * step / args.steps)))
    losses = []
    progress = _progress(args.steps, label)
    for inputs, targets in batches(data, args.steps, args.batch, args.context, args.seed):
        logits = model(inputs)
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.float().item())
        progress(losses[-1])
    return losses


def _progress(total: int, label: str):
    """A rich progress bar when rich is installed and stderr is a terminal, else a line every 10%."""
    state = {"done": 0, "start": time.perf_counter()}
    try:
        from rich.progress import Progress
        if not sys.stderr.isatty():
            raise ImportError
        bar = Progress(transient=True)
        bar.start()
        task = bar.add_task(label, total=total)

        def advance(loss: float) -> None:
            state["done"] += 1
            bar.update(task, advance=1, description=f"{label} loss {loss:.3f}")
            if state["done"] == total:
                bar.stop()
        return advance
    except ImportError:
        def advance(loss: float) -> None:
            state["done"] += 1
            if state["done"] % max(1, total // 10) == 0 or state["done"] == total:
                print(f"{label}: step {state['done']}/{total}, loss {loss:.4f}, "
                      f"{time.perf_counter() - state['start']:.0f}s", file=sys.stderr, flush=True)
        return advance


def plot(curves: dict[str, list[float]], path: str,
         title: str = "character-level transformer on Python's stdlib source") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    styles = ("-", "--", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)))
    for (label, losses), style in zip(curves.items(), styles * len(curves)):
        axis.plot(range(1, len(losses) + 1), losses, linestyle=style, label=label, linewidth=1.2)
    axis.set_xlabel("step")
    axis.set_ylabel("training loss (cross-entropy, nats)")
    axis.set_title(title)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def training_arguments(description: str) -> argparse.ArgumentParser:
    """The options every training example shares."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--context", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default="auto", help="fusedadam backend (default auto)")
    parser.add_argument("--out", help="PNG of the loss curves")
    parser.add_argument("--json", help="the losses as JSON")
    return parser


def prepare(args):
    """The encoded corpus, and a factory of models that all start from the same weights (drawn from --seed)."""
    text = corpus()
    vocab = sorted(set(text))
    data = torch.tensor([vocab.index(c) for c in text], dtype=torch.long)
    torch.manual_seed(args.seed)
    initial = CharTransformer(len(vocab), args.context).state_dict()

    def fresh_model(dtype: torch.dtype = torch.float32) -> nn.Module:
        model = CharTransformer(len(vocab), args.context)
        model.load_state_dict(initial)
        return model.to(dtype)
    return data, vocab, fresh_model


def main(argv=None) -> int:
    args = training_arguments(__doc__.split("\n\n")[0]).parse_args(argv)
    data, vocab, fresh_model = prepare(args)

    options = dict(lr=args.lr, betas=(0.9, 0.98), weight_decay=0.1)
    curves = {
        "torch.optim.AdamW": train(lambda ps: torch.optim.AdamW(ps, **options), fresh_model(), data, args,
                                   "torch AdamW"),
        f"fusedadam.FusedAdamW ({args.backend})": train(
            lambda ps: FusedAdamW(ps, backend=args.backend, **options), fresh_model(), data, args, "FusedAdamW"),
    }
    (torch_losses, fused_losses) = curves.values()
    gap = max(abs(a - b) for a, b in zip(torch_losses, fused_losses))
    print(f"{len(data):,} characters, vocabulary {len(vocab)}, {args.steps} steps")
    for label, losses in curves.items():
        print(f"{label:<36} first loss {losses[0]:.4f}, final loss {losses[-1]:.4f}")
    print(f"largest difference between the two curves: {gap:.2e}")
    if args.out:
        plot(curves, args.out)
        print(f"wrote {args.out}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"steps": args.steps, "curves": curves, "max_abs_difference": gap}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
