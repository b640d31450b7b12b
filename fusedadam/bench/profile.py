"""python -m fusedadam profile: where one implementation's step spends its time, per op or kernel."""
from __future__ import annotations

import statistics
from dataclasses import dataclass

import torch

from ..backends.cpu import GATHER_RANGE
from .implementations import IMPLEMENTATIONS
from .presets import get as get_preset
from .run import Timer

# Ranges that are host bookkeeping, not computation, when the step runs on the CPU.
_HOST_RANGES = (GATHER_RANGE,)


@dataclass
class OpLine:
    name: str
    calls_per_step: float
    ms_per_step: float


def profile(preset_name: str, impl_name: str, dtype: torch.dtype, device: torch.device, steps: int,
            trace_path: str | None = None, amsgrad: bool = False) -> dict:
    preset = get_preset(preset_name)
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=gen).to(dtype=dtype, device=device) for s in preset.shapes]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen).to(dtype=dtype, device=device)
    optimizer = IMPLEMENTATIONS[impl_name].make(params, amsgrad=amsgrad)
    for _ in range(2):
        optimizer.step()
    timer = Timer(device)
    step_ms = statistics.median(timer.time_ms(optimizer.step) for _ in range(steps))

    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(steps):
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    if trace_path:
        prof.export_chrome_trace(trace_path)

    averages = prof.key_averages()
    step_events = [e for e in averages if e.key.startswith("Optimizer.step#")]
    step_cpu_ms = sum(e.cpu_time_total for e in step_events) / 1e3 / steps if step_events else step_ms
    if device.type == "cuda":
        kernels = [e for e in averages if getattr(e, "device_type", None) == torch.autograd.DeviceType.CUDA]
        lines = [OpLine(e.key, e.count / steps, e.device_time_total / 1e3 / steps) for e in kernels]
        launches = sum(e.count for e in kernels) / steps
        host_ms = step_cpu_ms  # kernels run asynchronously: all of the step's CPU time is host time
    else:
        ops = [e for e in averages if not e.key.startswith("Optimizer.step#")]
        lines = [OpLine(e.key, e.count / steps, e.self_cpu_time_total / 1e3 / steps) for e in ops]
        launches = sum(e.count for e in ops if not e.key.startswith(_HOST_RANGES)) / steps
        compute_ms = sum(line.ms_per_step for line in lines if not line.name.startswith(_HOST_RANGES))
        host_ms = max(0.0, step_cpu_ms - compute_ms)
    lines.sort(key=lambda line: line.ms_per_step, reverse=True)
    moved = IMPLEMENTATIONS[impl_name].bytes_moved(dtype, amsgrad, preset.numels) * preset.numel
    return {
        "preset": preset.name, "impl": impl_name, "device": str(device), "dtype": str(dtype).replace("torch.", ""),
        "steps": steps, "step_ms": step_ms, "host_ms_per_step": host_ms, "launches_per_step": launches,
        "bytes_per_step": moved, "gbps": moved / step_ms / 1e6,
        "ops": [line.__dict__ for line in lines],
    }


def format_profile(result: dict, top: int = 15) -> str:
    unit = "kernel" if result["device"].startswith("cuda") else "op"
    lines = [f"{result['impl']} on {result['preset']} ({result['dtype']}, {result['device']}), "
             f"{result['steps']} profiled steps",
             f"step time (median, unprofiled)   {result['step_ms']:.3f} ms",
             f"host time per step               {result['host_ms_per_step']:.3f} ms",
             f"{unit} calls per step{' ' * (18 - len(unit))}{result['launches_per_step']:.0f}",
             f"bytes moved per step             {result['bytes_per_step'] / 1e6:.1f} MB",
             f"achieved bandwidth               {result['gbps']:.1f} GB/s", "",
             f"{unit:48} {'calls/step':>10} {'ms/step':>9}"]
    for line in result["ops"][:top]:
        lines.append(f"{line['name'][:48]:48} {line['calls_per_step']:10.1f} {line['ms_per_step']:9.3f}")
    return "\n".join(lines)
