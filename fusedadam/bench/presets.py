"""Parameter-shape presets: size matters, and so does the shape of the parameter list."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    name: str
    shapes: tuple[tuple[int, ...], ...]
    description: str

    @property
    def numels(self) -> tuple[int, ...]:
        """Each tensor's element count."""
        return tuple(math.prod(shape) for shape in self.shapes)

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


def _resnet50() -> tuple[tuple[int, ...], ...]:
    """ResNet-50 (He et al. 2016) as in torchvision: 161 tensors, 25.6M parameters (BatchNorm weight and bias
    counted; running statistics are buffers, not parameters)."""
    shapes = [(64, 3, 7, 7), (64,), (64,)]
    in_channels = 64
    for width, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for block in range(blocks):
            shapes += [(width, in_channels, 1, 1), (width,), (width,),
                       (width, width, 3, 3), (width,), (width,),
                       (4 * width, width, 1, 1), (4 * width,), (4 * width,)]
            if block == 0:
                shapes += [(4 * width, in_channels, 1, 1), (4 * width,), (4 * width,)]
            in_channels = 4 * width
    return tuple(shapes + [(1000, 2048), (1000,)])


_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9}


def flat(name: str) -> Preset | None:
    """`flat-<N>` with N like 1000, 50m or 1b: one tensor of N elements."""
    match = re.fullmatch(r"flat-(\d+)([kmb]?)", name)
    if match is None:
        return None
    n = int(match.group(1)) * _SUFFIX[match.group(2)]
    return Preset(name, ((n,),), f"one tensor of {n:,} elements: pure streaming")


def get(name: str) -> Preset:
    preset = PRESETS.get(name) or flat(name)
    if preset is None:
        raise KeyError(name)
    return preset


PRESETS = {p.name: p for p in [
    Preset("flat-50m", ((50_000_000,),), "one tensor of 50M elements: pure streaming"),
    Preset("gpt2-124m", _gpt2_124m(), "GPT-2 small's 148 parameter tensors (124.4M elements)"),
    Preset("llama-1b", _llama_1b(), "a Llama-style 1.2B model's 146 parameter tensors"),
    Preset("resnet50", _resnet50(), "ResNet-50's 161 parameter tensors (25.6M elements), many of them tiny"),
    Preset("many-small-5000x1000", ((1000,),) * 5000, "5000 tensors of 1000 elements: per-tensor overhead"),
    Preset("many-small-10000x4096", ((4096,),) * 10000, "10000 tensors of 4096 elements: launches and tables"),
    Preset("host-1000x16", ((16,),) * 1000, "1000 tiny tensors: the step is almost all host time"),
]}

CPU_DEFAULT = ("flat-50m", "gpt2-124m", "resnet50", "many-small-5000x1000", "host-1000x16")
CPU_QUICK = ("flat-50m", "many-small-5000x1000", "host-1000x16")
# flat-max: the largest flat tensor (up to 1B elements) whose arrays for every implementation fit in memory.
GPU_DEFAULT = ("flat-max", "gpt2-124m", "llama-1b", "many-small-10000x4096", "host-1000x16")
GPU_QUICK = ("flat-max", "gpt2-124m", "many-small-10000x4096")
FLAT_MAX_LIMIT = 10**9


def largest_flat(free_bytes: int, bytes_per_element: int) -> Preset:
    """flat-max resolved: the largest tensor, rounded down to a multiple of 2^20 elements and at most
    FLAT_MAX_LIMIT, for which `bytes_per_element` (every array the benchmark allocates per element) fits in
    `free_bytes`."""
    n = min(FLAT_MAX_LIMIT, int(free_bytes // max(1, bytes_per_element))) // 2**20 * 2**20
    return Preset(f"flat-{n}", ((n,),), f"one tensor of {n:,} elements (the largest that fits): pure streaming")
