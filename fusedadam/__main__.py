"""python -m fusedadam info | bench | profile"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "fp64": torch.float64}


def _device(args) -> torch.device:
    return torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))


def _check_names(presets, impls, device) -> str | None:
    """An error message for the first unknown preset or implementation, or one that cannot run here."""
    from .bench.implementations import IMPLEMENTATIONS
    from .bench.presets import PRESETS, get

    for name in presets:
        try:
            name == "flat-max" or get(name)
        except KeyError:
            return (f"unknown preset {name!r}; choose from {', '.join(sorted(PRESETS))}, flat-<N> (e.g. flat-100m) "
                    "or flat-max (the largest that fits)")
    for name in impls:
        if name not in IMPLEMENTATIONS:
            return f"unknown implementation {name!r}; choose from {', '.join(sorted(IMPLEMENTATIONS))}"
        reason = IMPLEMENTATIONS[name].unavailable_reason(device.type)
        if reason:
            return f"implementation {name!r} cannot run here: {reason}"
    return None


def _bench(args) -> int:
    from .bench.implementations import default_implementations
    from .bench.presets import CPU_DEFAULT, CPU_QUICK, GPU_DEFAULT, GPU_QUICK
    from .bench.report import format_table, plot, print_table
    from .bench.run import run

    device = _device(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        presets = args.presets or list(GPU_QUICK if args.quick else GPU_DEFAULT)
    else:
        presets = args.presets or list(CPU_QUICK if args.quick else CPU_DEFAULT)
    impls = args.impls or default_implementations(device.type)
    error = _check_names(presets, impls, device)
    if error:
        print(error, file=sys.stderr)
        return 2
    repeats = args.repeats or (5 if args.quick else 15)
    dtypes = [DTYPES[name] for name in dict.fromkeys(args.dtype)]
    with _progress(len(presets) * len(dtypes) * repeats * 2) as advance:
        report = run(presets, impls, dtypes, device, repeats, warmup=2, amsgrad=args.amsgrad, on_round=advance)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    if args.plot:
        plot(report, args.plot)
    if args.plain or not sys.stdout.isatty():  # rich tables wrap badly in logs and pipes
        print(format_table(report))
    else:
        print_table(report)
    return 0


@contextlib.contextmanager
def _progress(total: int):
    """A progress bar on stderr (rich, when installed); yields the function that advances it by one round."""
    try:
        from rich.progress import Progress
    except ImportError:
        yield lambda: None
        return
    with Progress(transient=True, console=_stderr_console()) as bar:
        task = bar.add_task("benchmarking", total=total)
        yield lambda: bar.advance(task)


def _stderr_console():
    from rich.console import Console
    return Console(stderr=True)


def _profile(args) -> int:
    from .bench.profile import format_profile, profile

    device = _device(args)
    error = _check_names([args.preset], [args.impl], device)
    if error:
        print(error, file=sys.stderr)
        return 2
    result = profile(args.preset, args.impl, DTYPES[args.dtype], device, args.steps, args.trace, args.amsgrad)
    print(format_profile(result))
    if args.trace:
        print(f"\nChrome trace written to {args.trace} (open it in chrome://tracing or ui.perfetto.dev)")
    return 0


def _info(args) -> int:
    from .info import collect, format_info

    print(format_info(collect()))
    if args.kernels:
        from .kernel_resources import format_table, kernel_table

        print()
        print(format_table(kernel_table()))
    return 0


def main(argv=None) -> int:
    from .bench.presets import CPU_DEFAULT, GPU_DEFAULT

    parser = argparse.ArgumentParser(prog="python -m fusedadam",
                                     description="fusedadam: Adam at the memory-bandwidth limit.")
    commands = parser.add_subparsers(dest="command", required=True)

    info = commands.add_parser("info", help="what was compiled in and what backend='auto' picks here")
    info.add_argument("--kernels", action="store_true",
                      help="also every compiled CUDA kernel: registers, stack, spills, resident 256-thread blocks per "
                           "SM, occupancy, and 128-bit loads/stores in its SASS (read without a GPU)")
    info.set_defaults(run=_info)

    bench = commands.add_parser(
        "bench", help="time one AdamW step per preset and implementation, next to the bandwidth ceiling",
        description="Times one AdamW step for each preset x implementation, interleaved, and reports the median, "
                    "p20..p80, GB/s (7 x itemsize bytes per parameter), the fraction of a bandwidth ceiling "
                    "measured in the same run with Adam's access pattern, and the speed-up over torch-fused.")
    bench.add_argument("--quick", action="store_true", help="fewer presets and rounds (under 2 minutes on 2 cores)")
    bench.add_argument("--presets", nargs="+", metavar="NAME",
                       help="presets to run: flat-50m, gpt2-124m, llama-1b, resnet50, many-small-5000x1000, "
                            "many-small-10000x4096, host-1000x16, flat-<N>, or flat-max (the largest that fits); "
                            "default on a CPU: " + ", ".join(CPU_DEFAULT) + "; on a GPU: " + ", ".join(GPU_DEFAULT))
    bench.add_argument("--impls", nargs="+", metavar="NAME", help="implementations (default: all available here)")
    bench.add_argument("--dtype", nargs="+", choices=sorted(DTYPES), default=["fp32"],
                       help="storage dtypes, each run on every preset (default fp32)")
    bench.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda if present, else cpu")
    bench.add_argument("--repeats", type=int, help="timed rounds per implementation (default 15; --quick 5)")
    bench.add_argument("--threads", type=int, help="torch.set_num_threads for the run")
    bench.add_argument("--amsgrad", action="store_true", help="AdamW with amsgrad (36 bytes per fp32 parameter)")
    bench.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    bench.add_argument("--plot", metavar="PATH", help="also draw the fraction of the ceiling as a PNG (matplotlib)")
    bench.add_argument("--plain", action="store_true", help="a plain-text table on a terminal too (it is the default in pipes and logs)")
    bench.set_defaults(run=_bench)

    prof = commands.add_parser(
        "profile", help="per-op (CPU) or per-kernel (GPU) times of one implementation's step under torch.profiler",
        description="Runs N steps of one preset and implementation under torch.profiler and prints the time per op "
                    "(CPU) or kernel (GPU), calls per step, host time per step, bytes moved and achieved GB/s.")
    prof.add_argument("--preset", default="gpt2-124m", help="a preset name or flat-<N> (default gpt2-124m)")
    prof.add_argument("--impl", default="fusedadam-cpu", help="an implementation (default fusedadam-cpu)")
    prof.add_argument("--steps", type=int, default=5, help="profiled steps (default 5)")
    prof.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    prof.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda if present, else cpu")
    prof.add_argument("--amsgrad", action="store_true")
    prof.add_argument("--trace", metavar="PATH", help="also write a Chrome trace")
    prof.set_defaults(run=_profile)

    args = parser.parse_args(argv)
    if getattr(args, "repeats", None) is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if getattr(args, "steps", 1) < 1:
        parser.error("--steps must be at least 1")
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
