"""Where a step of many small tensors goes on the CPU: the gradient gather (cold and warm) against the kernel alone
and torch's fused step, interleaved in one process (bench/NOTES.md, "Many small tensors").

    python bench/gather_floor.py [--tensors 5000] [--numel 1000] [--rounds 30]
"""
import argparse
import statistics
import time

import torch

import fusedadam
from fusedadam.optimizer import _step_config


def timed_ms(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tensors", type=int, default=5000)
    parser.add_argument("--numel", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(0)
    ours = [torch.randn(args.numel, generator=gen) for _ in range(args.tensors)]
    theirs = [p.clone() for p in ours]
    for p, q in zip(ours, theirs):
        p.grad = q.grad = torch.randn(args.numel, generator=gen)
    optimizer = fusedadam.FusedAdamW(ours, lr=1e-3, backend="cpu")
    torch_fused = torch.optim.AdamW(theirs, lr=1e-3, fused=True)
    for _ in range(3):
        optimizer.step()
        torch_fused.step()
    (runner,) = optimizer._plans[0].runners
    config = _step_config(optimizer.param_groups[0], 0, optimizer._configs)
    # A copy larger than the L2 and the gathered objects: what the step before leaves in the caches.
    evict_src = torch.empty(35_000_000)
    evict_dst = torch.empty_like(evict_src)
    samples = {name: [] for name in ("torch fused step", "fusedadam step", "gather, cold", "gather, warm", "kernel")}
    for _ in range(args.rounds):
        samples["torch fused step"].append(timed_ms(torch_fused.step))
        optimizer.step()
        samples["fusedadam step"].append(timed_ms(optimizer.step))
        evict_dst.copy_(evict_src)
        samples["gather, cold"].append(timed_ms(runner.gather_grads))
        samples["gather, warm"].append(timed_ms(runner.gather_grads))
        samples["kernel"].append(timed_ms(lambda: runner.run(config)))
    print(f"{args.tensors} x {args.numel} fp32, {torch.get_num_threads()} threads, {args.rounds} rounds")
    for name, values in samples.items():
        print(f"{name:<18} median {statistics.median(values):8.3f} ms   min {min(values):8.3f} ms")


if __name__ == "__main__":
    main()
