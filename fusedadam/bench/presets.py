"""Parameter-shape presets: size matters, and so does the shape of the parameter list."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    name: str
    shapes: tuple[tuple[int, ...], ...]
    description: str

    @property
    def numel(self) -> int:
        total = 0
        for shape in self.shapes:
            n = 1
            for d in shape:
                n *= d
            total += n
        return total


def _gpt2_124m() -> tuple[tuple[int, ...], ...]:
    """GPT-2 small (Radford et al. 2019) as in Hugging Face's GPT2Model: 124.4M parameters, head tied."""
    d, vocab, context, layers = 768, 50257, 1024, 12
    shapes = [(vocab, d), (context, d)]
    for _ in range(layers):
        shapes += [(d,), (d,), (d, 3 * d), (3 * d,), (d, d), (d,),   # ln_1, attention
                   (d,), (d,), (d, 4 * d), (4 * d,), (4 * d, d), (d,)]  # ln_2, MLP
    return tuple(shapes + [(d,), (d,)])  # ln_f


def _llama_1b() -> tuple[tuple[int, ...], ...]:
    """A Llama-3.2-1B-style decoder: d=2048, 16 layers, GQA with 8 KV heads of 64, SwiGLU 8192, vocab 128256."""
    d, layers, kv, ffn, vocab = 2048, 16, 512, 8192, 128256
    shapes = [(vocab, d)]
    for _ in range(layers):
        shapes += [(d,), (d, d), (kv, d), (kv, d), (d, d), (d,), (ffn, d), (ffn, d), (d, ffn)]
    return tuple(shapes + [(d,)])


PRESETS = {p.name: p for p in [
    Preset("flat-50m", ((50_000_000,),), "one tensor of 50M elements: pure streaming"),
    Preset("gpt2-124m", _gpt2_124m(), "GPT-2 small's 148 parameter tensors (124.4M elements)"),
    Preset("llama-1b", _llama_1b(), "a Llama-style 1.2B model's 146 parameter tensors"),
    Preset("many-small-5000x1000", ((1000,),) * 5000, "5000 tensors of 1000 elements: per-tensor overhead"),
    Preset("host-1000x16", ((16,),) * 1000, "1000 tiny tensors: the step is almost all host time"),
]}

CPU_DEFAULT = ("flat-50m", "gpt2-124m", "many-small-5000x1000", "host-1000x16")
CPU_QUICK = ("flat-50m", "many-small-5000x1000", "host-1000x16")
