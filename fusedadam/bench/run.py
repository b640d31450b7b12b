"""Runs presets x implementations, interleaved, and reports medians next to the bandwidth ceiling."""
from __future__ import annotations

import gc
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .. import __version__
from .ceiling import BandwidthProbe
from .implementations import BASELINE, IMPLEMENTATIONS
from .presets import get as get_preset, largest_flat

CEILING = "ceiling (4R+3W probe)"
MEMORY_FRACTION = 0.8  # of the free memory a preset may take
ALLOCATING = ("torch-forloop", "torch-foreach", "bitsandbytes-adamw8bit", "torchao-adamw8bit")
# Numbers not to trust: a step faster than the probe measured in the same rounds (no step moves its bytes faster
# than the probe does: the probe was slowed by something else), or samples whose middle 60% spread over 15% of
# their median. Either makes a preset measure again, its samples pooled, up to MEASUREMENTS times in all; then the
# report says the machine was too noisy.
ABOVE_CEILING = 1.05
SPREAD = 0.15
MEASUREMENTS = 3


@dataclass
class Row:
    impl: str
    preset: str
    dtype: str
    ms: float        # median step time
    p20_ms: float
    p80_ms: float
    gbps: float
    fraction_of_ceiling: float
    ceiling_gbps: float
    vs_torch_fused: float | None  # torch-fused time / this time: > 1 is faster
    numel: int
    tensors: int
    bytes_per_param: float
    noise: str | None = None  # why this preset's numbers are not to be trusted (distrust), after every measurement


class Timer:
    """Wall time on the CPU; CUDA events on a GPU (no host synchronization inside the timed region)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def time_ms(self, fn) -> float:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end)
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3


def available_bytes(device: torch.device) -> int:
    """Memory a preset may still allocate. On a GPU the driver's free memory counts the blocks torch's caching
    allocator keeps for reuse as used (after flat-max, ~74 GiB of them made llama-1b look too big): those are
    released first, and what the allocator still reserves but no tensor holds is counted as free."""
    if device.type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()
        free = torch.cuda.mem_get_info(device)[0]
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62


def _percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def bytes_per_element(impl_names, dtype: torch.dtype, amsgrad: bool) -> float:
    """Bytes one benchmark allocates per parameter element: each implementation's parameter and state, the
    gradients (shared), the probe's four arrays."""
    return sum(IMPLEMENTATIONS[n].bytes_held(dtype, amsgrad) for n in impl_names) + 5 * dtype.itemsize


def bench_preset(preset, impl_names, dtype, device, repeats, warmup, log, amsgrad=False,
                 on_round=lambda: None) -> list[Row]:
    itemsize = torch.empty((), dtype=dtype).element_size()
    state_bytes = preset.numel * itemsize
    for name in impl_names:
        reason = IMPLEMENTATIONS[name].dtype_reason(dtype)
        if reason is not None:
            log(f"{name} skipped for {str(dtype).replace('torch.', '')}: {reason}")
    impl_names = [n for n in impl_names if IMPLEMENTATIONS[n].dtype_reason(dtype) is None]
    needed = preset.numel * bytes_per_element(impl_names, dtype, amsgrad)
    if needed > MEMORY_FRACTION * available_bytes(device):
        log(f"skipping {preset.name}: needs ~{needed / 2**30:.1f} GiB, {available_bytes(device) / 2**30:.1f} GiB free")
        return []
    gen = torch.Generator().manual_seed(0)
    base = [torch.randn(s, generator=gen).to(dtype=dtype, device=device) for s in preset.shapes]
    grads = [torch.randn(s, generator=gen).to(dtype=dtype, device=device) for s in preset.shapes]
    runners = {}
    for name in impl_names:
        params = [b.clone() for b in base]
        for p, g in zip(params, grads):
            p.grad = g  # shared, read-only for Adam
        try:
            runners[name] = IMPLEMENTATIONS[name].make(params, amsgrad=amsgrad).step
        except Exception as error:  # a peer that rejects an option: report and go on
            log(f"{name} skipped on {preset.name}: {type(error).__name__}: {error}")
    probe = BandwidthProbe(state_bytes, device)
    runners[CEILING] = probe.step
    del base
    timer = Timer(device)
    for fn in runners.values():
        for _ in range(warmup):
            fn()
    samples = {name: [] for name in runners}
    # Round-robin, so drift on a noisy machine hits every implementation alike. Each timed step follows an
    # untimed one of the same implementation, so the switch (caches and allocator state left by the previous
    # implementation) is charged to no one. torch's for-loop and foreach steps allocate and free hundreds of
    # MB of temporaries per step; interleaved with the others they slowed the next implementation by up to
    # 20% (bench/NOTES.md), so they take their turns in a phase of their own.
    phases = [[n for n in runners if n in ALLOCATING], [n for n in runners if n not in ALLOCATING]]
    for measurement in range(1, MEASUREMENTS + 1):
        # Measuring again, the allocating peers (context, not the subject; noisy by nature) are not re-run.
        for phase in phases if measurement == 1 else phases[1:]:
            for _ in range(repeats):
                for name in phase:
                    runners[name]()
                    samples[name].append(timer.time_ms(runners[name]))
                on_round()
        rows = _rows(samples, probe.bytes_moved, preset, dtype, amsgrad)
        reasons = distrust(rows)
        if not reasons:
            break
        if measurement < MEASUREMENTS:
            log(f"{preset.name}: {'; '.join(reasons)}: measuring {repeats} more rounds")
        else:
            log(f"{preset.name}: the machine was too noisy for these numbers ({'; '.join(reasons)})")
            for row in rows:
                row.noise = "; ".join(reasons)
    del runners, probe, grads
    gc.collect()
    return rows


def _rows(samples: dict, probe_bytes: int, preset, dtype, amsgrad) -> list[Row]:
    ceiling_ms = statistics.median(samples[CEILING])
    ceiling_gbps = probe_bytes / ceiling_ms / 1e6
    baseline_ms = statistics.median(samples[BASELINE]) if BASELINE in samples else None
    rows = []
    for name, values in samples.items():
        ms = statistics.median(values)
        # The probe's row is labelled with torch's bytes (it moves as many bytes as the preset's arrays).
        moved_per_param = IMPLEMENTATIONS[BASELINE if name == CEILING else name].bytes_moved(dtype, amsgrad,
                                                                                             preset.numels)
        moved = probe_bytes if name == CEILING else moved_per_param * preset.numel
        gbps = moved / ms / 1e6
        rows.append(Row(impl=name, preset=preset.name, dtype=str(dtype).replace("torch.", ""), ms=ms,
                        p20_ms=_percentile(values, 0.2), p80_ms=_percentile(values, 0.8), gbps=gbps,
                        fraction_of_ceiling=gbps / ceiling_gbps, ceiling_gbps=ceiling_gbps,
                        vs_torch_fused=(baseline_ms / ms) if baseline_ms and name != CEILING else None,
                        numel=preset.numel, tensors=len(preset.shapes), bytes_per_param=moved_per_param))
    return rows


def distrust(rows: list[Row]) -> list[str]:
    """Why one preset's measured rows are not to be trusted (ABOVE_CEILING, SPREAD); empty when they are. torch's
    for-loop and foreach steps, which allocate their temporaries, are not judged."""
    reasons = []
    for row in (r for r in rows if r.impl not in ALLOCATING):
        if row.fraction_of_ceiling > ABOVE_CEILING and row.impl != CEILING:
            reasons.append(f"{row.impl} at {row.fraction_of_ceiling:.0%} of the ceiling")
        spread = (row.p80_ms - row.p20_ms) / row.ms
        if spread > SPREAD:
            reasons.append(f"{row.impl}'s p20..p80 spread {spread:.0%} of its median")
    return reasons


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {torch.get_num_threads()} threads"


def versions() -> dict:
    info = {"fusedadam": __version__, "torch": torch.__version__, "python": platform.python_version()}
    try:
        import triton
        info["triton"] = triton.__version__
    except ImportError:
        pass
    if torch.version.cuda:
        info["cuda"] = torch.version.cuda
    if torch.cuda.is_available():
        from .._native import try_native
        module = try_native()
        if module is not None and module.has_cuda:
            driver = module.cuda_driver_version()
            info["cuda_driver"] = f"{driver // 1000}.{driver % 1000 // 10}"
            info["fusedadam_cuda_archs"] = module.cuda_compiled_archs()
    return info


def git_commit() -> str | None:
    """The checkout's commit, with "-dirty" when the working tree differs from it; None outside a checkout.
    FUSEDADAM_COMMIT names it where the tree travelled without its .git (bench/gpu_check.sh)."""
    if os.environ.get("FUSEDADAM_COMMIT"):
        return os.environ["FUSEDADAM_COMMIT"]
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=here)
        if head.returncode != 0:
            return None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                text=True, timeout=5, cwd=here)
        return head.stdout.strip() + ("-dirty" if status.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def run(preset_names, impl_names, dtypes, device, repeats, warmup, log=lambda m: print(m, file=sys.stderr),
        amsgrad=False, on_round=lambda: None):
    """Every preset x dtype x implementation; `dtypes` is a list of torch dtypes."""
    rows = []
    jobs = [(name, dtype) for name in preset_names for dtype in dtypes]
    for i, (name, dtype) in enumerate(jobs, 1):
        log(f"[{i}/{len(jobs)}] {name} {str(dtype).replace('torch.', '')}: {', '.join(impl_names)} + ceiling, "
            f"{repeats} rounds")
        if name == "flat-max":
            preset = largest_flat(int(MEMORY_FRACTION * available_bytes(device)),
                                  bytes_per_element(impl_names, dtype, amsgrad))
        else:
            preset = get_preset(name)
        rows += bench_preset(preset, impl_names, dtype, device, repeats, warmup, log, amsgrad, on_round)
    # The headline ceiling is the streaming one: that of the preset moving the most bytes (a tiny preset's
    # probe runs from cache and says nothing about memory).
    largest = max((r for r in rows if r.impl == CEILING), key=lambda r: r.numel * r.bytes_per_param, default=None)
    return {
        "device": describe_device(device),
        "ceiling_gbps": largest.ceiling_gbps if largest else None,
        "results": [asdict(r) for r in rows],
        "versions": versions(),
        "commit": git_commit(),
        "date": time.strftime("%Y-%m-%d"),
    }
