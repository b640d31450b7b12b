"""A small, mixed problem for compute-sanitizer (bench/gpu_check.py runs it under memcheck, racecheck and synccheck):
a few hundred tensors of odd sizes, some as unaligned views into one buffer, stepped once in every storage dtype and
every precision mode (8-bit moments where the backend steps them), with AMSGrad, GradScaler's unscale, a GradScaler
skip, and tensor lr / betas on the device.

    compute-sanitizer --tool memcheck python3 bench/sanitizer_problem.py --backend cuda

Exits non-zero when a step raises or a counter is wrong; the sanitizer's own findings are in its report.
`--backend cuda-host` runs the same problem on the CPU through the host-played CUDA kernel (tests use it)."""
from __future__ import annotations

import argparse

import torch

from fusedadam import FusedAdam
from fusedadam.backends import EIGHT_BIT_BACKENDS


def tensors(dtype: torch.dtype, generator: torch.Generator, device: str) -> list[torch.Tensor]:
    # The first views are long enough for 8-bit moments (4096 elements and more): their codes' blocks begin at odd
    # addresses of the parameter and its gradient.
    sizes = [5_000, 9_999] + torch.randint(1, 3000, (200,), generator=generator).tolist() + [1, 7, 33, 16_385, 70_001]
    flat = torch.randn(sum(sizes) + 8 * len(sizes), generator=generator).to(device=device, dtype=dtype)
    params, offset = [], 3  # views into one buffer, starting at odd element offsets (FSDP / Megatron style)
    for n in sizes[:100]:
        params.append(flat[offset:offset + n])
        offset += n + 5
    return params + [torch.randn(n, generator=generator).to(device=device, dtype=dtype) for n in sizes[100:]]


def modes(dtype: torch.dtype, eight_bit: bool) -> list[dict]:
    found = [dict(), dict(amsgrad=True, weight_decay=0.1), dict(decoupled_weight_decay=True, weight_decay=0.1,
                                                                 maximize=True)]
    if dtype in (torch.float16, torch.bfloat16):
        found += [dict(master_weights=True, amsgrad=True), dict(master_weights=True, state_dtype=torch.bfloat16)]
    if dtype == torch.bfloat16:
        found += [dict(rounding="stochastic", amsgrad=True), dict(kahan_summation=True),
                  dict(kahan_summation=True, state_dtype=torch.float32, amsgrad=True)]
    if dtype == torch.float32:
        found += [dict(state_dtype=torch.bfloat16, amsgrad=True)]
    if eight_bit and dtype != torch.float64:  # codes for the tensors of 4096 elements and more, fp32 for the rest
        found += [dict(state_dtype="8bit", amsgrad=True)]
        if dtype != torch.float32:
            found += [dict(state_dtype="8bit", master_weights=True)]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["cuda", "triton", "cuda-host"], required=True)
    args = parser.parse_args()
    device = "cpu" if args.backend == "cuda-host" else "cuda"
    generator = torch.Generator().manual_seed(0)
    dtypes = [torch.float32, torch.float16, torch.bfloat16] + ([torch.float64] if args.backend != "triton" else [])
    steps = 0
    for dtype in dtypes:
        for options in modes(dtype, args.backend in EIGHT_BIT_BACKENDS):
            params = tensors(dtype, generator, device)
            lr = torch.tensor(1e-3, device=device)
            betas = (torch.tensor(0.9, device=device), torch.tensor(0.99, device=device))
            optimizer = FusedAdam(params, lr=lr, betas=betas, capturable=True, backend=args.backend, **options)
            for step in range(3):
                for p in params:
                    p.grad = torch.randn(p.shape, device=device).to(dtype)
                optimizer.grad_scale = torch.tensor(4.0, device=device)
                optimizer.found_inf = torch.tensor(1.0 if step == 1 else 0.0, device=device)  # step 1 is skipped
                optimizer.step()
                steps += 1
            if device == "cuda":
                torch.cuda.synchronize()
            counts = {optimizer.state[p]["step"].item() for p in params}
            if counts != {2.0}:
                raise SystemExit(f"{dtype} {options}: step counters {sorted(counts)}, expected 2 (one step skipped)")
    print(f"{steps} steps on backend {args.backend}, every storage dtype and precision mode: done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
