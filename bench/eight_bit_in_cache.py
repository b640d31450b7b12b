"""What one element of the CPU step costs when nothing waits on memory: one tensor small enough for L2, one thread,
stepped many times, with fp32, bf16 and 8-bit moments (bench/NOTES.md, "8-bit moments in the CPU kernel").

    python bench/eight_bit_in_cache.py [--numel 65536] [--steps 200]

Each figure is the best of 7 rounds (ns per element, the Python call included: ~10 us a step, 0.15 ns an element
at 65536)."""
from __future__ import annotations

import argparse
import time

import torch

from fusedadam import FusedAdamW

STATES = {"fp32": None, "bf16": torch.bfloat16, "8bit": "8bit"}


def ns_per_element(numel: int, steps: int, state_dtype) -> float:
    p = torch.randn(numel)
    p.grad = torch.randn(numel)
    optimizer = FusedAdamW([p], lr=1e-3, state_dtype=state_dtype)
    for _ in range(20):
        optimizer.step()
    best = float("inf")
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(steps):
            optimizer.step()
        best = min(best, (time.perf_counter() - start) / steps)
    return best * 1e9 / numel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--numel", type=int, default=65536)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name, state_dtype in STATES.items():
        print(f"{name} moments: {ns_per_element(args.numel, args.steps, state_dtype):.3f} ns an element")


if __name__ == "__main__":
    main()
