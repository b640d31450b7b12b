"""python -m fusedadam info | bench"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "fp64": torch.float64}


def _bench(args) -> int:
    from .bench.implementations import IMPLEMENTATIONS
    from .bench.presets import CPU_DEFAULT, CPU_QUICK, PRESETS
    from .bench.run import format_table, run

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.threads:
        torch.set_num_threads(args.threads)
    presets = args.presets or list(CPU_QUICK if args.quick else CPU_DEFAULT)
    unknown = [p for p in presets if p not in PRESETS]
    if unknown:
        print(f"unknown preset(s) {unknown}; choose from {sorted(PRESETS)}", file=sys.stderr)
        return 2
    impls = args.impls or [n for n, i in IMPLEMENTATIONS.items() if i.unavailable_reason(device.type) is None]
    for name in impls:
        if name not in IMPLEMENTATIONS:
            print(f"unknown implementation {name!r}; choose from {sorted(IMPLEMENTATIONS)}", file=sys.stderr)
            return 2
        reason = IMPLEMENTATIONS[name].unavailable_reason(device.type)
        if reason:
            print(f"implementation {name!r} cannot run here: {reason}", file=sys.stderr)
            return 2
    repeats = args.repeats or (5 if args.quick else 15)
    report = run(presets, impls, DTYPES[args.dtype], device, repeats, warmup=2)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(format_table(report))
    return 0


def _info(args) -> int:
    from .info import collect, format_info

    print(format_info(collect()))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fusedadam",
                                     description="fusedadam: Adam at the memory-bandwidth limit.")
    commands = parser.add_subparsers(dest="command", required=True)

    info = commands.add_parser("info", help="what was compiled in and what backend='auto' picks here")
    info.set_defaults(run=_info)

    bench = commands.add_parser(
        "bench", help="time one AdamW step per preset and implementation, next to the bandwidth ceiling",
        description="Times one AdamW step for each preset x implementation, interleaved, and reports the median, "
                    "p20..p80, GB/s (7 x itemsize bytes per parameter), the fraction of a bandwidth ceiling "
                    "measured in the same run with Adam's access pattern, and the speed-up over torch-fused.")
    bench.add_argument("--quick", action="store_true", help="fewer presets and rounds (under 2 minutes on 2 cores)")
    bench.add_argument("--presets", nargs="+", metavar="NAME", help="presets to run (default: all CPU presets)")
    bench.add_argument("--impls", nargs="+", metavar="NAME", help="implementations (default: all available here)")
    bench.add_argument("--dtype", choices=sorted(DTYPES), default="fp32", help="storage dtype (default fp32)")
    bench.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda if present, else cpu")
    bench.add_argument("--repeats", type=int, help="timed rounds per implementation (default 15; --quick 5)")
    bench.add_argument("--threads", type=int, help="torch.set_num_threads for the run")
    bench.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    bench.set_defaults(run=_bench)

    args = parser.parse_args(argv)
    if getattr(args, "repeats", None) is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
