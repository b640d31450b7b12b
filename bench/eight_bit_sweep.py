"""The shape of the Triton kernel's 8-bit pieces, timed on a GPU (bench/NOTES.md, "The first GPU run": the 8-bit step
reached 60-63% of the probe on an H200, its time set by something other than bytes). Each configuration is a number
of elements a thread and of warps a program; all run interleaved in one benchmark beside torch fused AdamW (fp32
states) and the in-run 4R+3W probe, so their ratios come from one run. Printed: the benchmark's table, then the
programs per SM of each compiled kernel (the launcher's count from its registers and shared memory).

    python bench/eight_bit_sweep.py [--presets llama-1b] [--dtype fp32 bf16] [--repeats 10] [--json PATH]

Only the 8-bit launches change with a configuration; elements a thread apply to them alone, warps a program to every
launch of the step (the fp32 moments of tensors under 4096 elements, a small share). Without a GPU it runs under
Triton's interpreter (TRITON_INTERPRET=1, --device cpu), where pieces have the interpreter's own size: a check of the
plumbing only (tests/test_gpu_check.py)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from types import SimpleNamespace

import torch

from fusedadam.backends import triton_backend
from fusedadam.bench import implementations
from fusedadam.bench.report import format_table
from fusedadam.bench.run import bench_preset
from fusedadam.bench.presets import get as preset_named

# (elements a thread, warps a program): the first is what the backend launches today.
CONFIGURATIONS = ((triton_backend.EIGHT_BIT_ELEMENTS_PER_THREAD, triton_backend.NUM_WARPS), (8, 8), (4, 4), (8, 4))
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def configured(elements: int, warps: int) -> implementations.Implementation:
    """fusedadam-triton+8bit whose steps launch with this configuration (and leave the backend's own after)."""
    base = implementations.IMPLEMENTATIONS["fusedadam-triton+8bit"]

    def make(params, **options):
        optimizer = base.make(params, **options)

        def step():
            default = triton_backend.EIGHT_BIT_ELEMENTS_PER_THREAD, triton_backend.NUM_WARPS
            triton_backend.EIGHT_BIT_ELEMENTS_PER_THREAD, triton_backend.NUM_WARPS = elements, warps
            try:
                optimizer.step()
            finally:
                triton_backend.EIGHT_BIT_ELEMENTS_PER_THREAD, triton_backend.NUM_WARPS = default
        return SimpleNamespace(step=step)
    return dataclasses.replace(base, name=f"triton+8bit {elements}/thread {warps} warps", make=make)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["llama-1b"])
    parser.add_argument("--dtype", nargs="+", choices=sorted(DTYPES), default=["fp32", "bf16"])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--json", help="write the rows and the kernels' residency here")
    args = parser.parse_args()
    device = torch.device(args.device)
    swept = [configured(e, w) for e, w in CONFIGURATIONS]
    implementations.IMPLEMENTATIONS.update({impl.name: impl for impl in swept})
    names = ["torch-fused", *(impl.name for impl in swept)]
    rows = []
    for preset in args.presets:
        for dtype in args.dtype:
            rows += bench_preset(preset_named(preset), names, DTYPES[dtype], device, args.repeats, warmup=3,
                                 log=lambda message: print(message, file=sys.stderr, flush=True))
    report = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (interpreter)",
              "results": [dataclasses.asdict(row) for row in rows],
              # key: the launch's specialization, ending in (block, warps); value: programs per SM
              "resident": [[repr(key), per_sm] for key, per_sm in triton_backend._resident.items()]}
    print(format_table(report))
    for key, per_sm in report["resident"]:
        print(f"{per_sm} programs per SM: {key}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report, out, indent=1)
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
