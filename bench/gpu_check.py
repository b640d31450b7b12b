"""The one prepared GPU run (DESIGN.md section 6), as phases that each have a time limit, run in order of value, and
are recorded in $OUT/summary.json whatever happens (a phase that fails, hangs or cannot start is recorded too; the
summary is rewritten after every phase, so even a run cut short by the lease leaves one).

    OUT=/tmp/out python3 bench/gpu_check.py            # what bench/gpu_check.sh runs
    GPU_CHECK_BUDGET=560 ...                            # seconds for all phases together (default 560)

Phases: preflight (GPU, driver, nvcc, Python, torch, Triton, setuptools, pybind11, compute-sanitizer; the build path
chosen from what is there, no network), build (sm_90 only), info --kernels, the GPU-only tests, the benchmark, the
precision-mode and torch.compile benchmarks, a profile of many small tensors (host against kernel time), the
correctness matrix on the GPU (spread over the cores with pytest-xdist when it is there: most of its time is Triton
compiling each mode's kernel), the 8-bit piece-shape sweep (bench/eight_bit_sweep.py), and last the sanitizer
(memcheck, racecheck and synccheck over bench/sanitizer_problem.py through cuda and triton; findings counted). The order and the limits come from the first run on an H200
(bench/NOTES.md, "The first GPU run"). Without a GPU the build and info phases still run (they need none: the
rehearsal checks the build path), every GPU phase fails at once with the reason, and the summary is still written.

$OUT receives six files at most (the lease returns eight): summary.json, the four benchmarks' JSON and phases.log,
every phase's whole output one after another."""
from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(os.environ.get("OUT", ROOT / "bench" / "results" / "local"))
PYTHON = os.environ.get("PYTHON", sys.executable)
BUDGET = float(os.environ.get("GPU_CHECK_BUDGET", "560"))
START = time.monotonic()

SUMMARY: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "commit": os.environ.get("FUSEDADAM_COMMIT", ""),
                 "budget_s": BUDGET, "phases": []}


def remaining() -> float:
    return BUDGET - (time.monotonic() - START)


def write_summary() -> None:
    SUMMARY["elapsed_s"] = round(time.monotonic() - START, 1)
    (OUT / "summary.json").write_text(json.dumps(SUMMARY, indent=2) + "\n")


def tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def phase(name: str, limit: float, cmd: list[str], needs_gpu: bool = True, env: dict | None = None,
          parse=None) -> dict:
    """Runs one phase under min(limit, what is left of the budget); records it and rewrites the summary."""
    record: dict = {"name": name, "command": " ".join(cmd)}
    SUMMARY["phases"].append(record)
    print(f"== {name}", flush=True)
    if needs_gpu and not SUMMARY.get("gpu"):
        record.update(status="failed", exit=None, seconds=0.0,
                      reason=f"no GPU: {SUMMARY.get('no_gpu_reason', 'preflight found none')}")
    elif remaining() < 10:
        record.update(status="not run", exit=None, seconds=0.0, reason="the time budget is spent")
    else:
        allowed = min(limit, remaining())
        record["limit_s"] = round(allowed)
        started = time.monotonic()
        try:
            done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                                  timeout=allowed)
            output, code = done.stdout + done.stderr, done.returncode
            record.update(status="passed" if code == 0 else "failed", exit=code)
        except subprocess.TimeoutExpired as expired:
            output = (expired.stdout or b"").decode(errors="replace") + (expired.stderr or b"").decode(errors="replace")
            record.update(status="timed out", exit=None)
        except OSError as error:
            output = str(error)
            record.update(status="failed", exit=None, reason=str(error))
        with open(OUT / "phases.log", "a") as log:
            log.write(f"===== {name} ({record['status']}, {round(time.monotonic() - started, 1)} s): "
                      f"{record['command']}\n{output}\n")
        record["seconds"] = round(time.monotonic() - started, 1)
        record["tail"] = tail(output)
        if parse is not None:
            record.update(parse(output))
    print(f"   {record['status']} ({record.get('seconds', 0)} s){': ' + record['reason'] if 'reason' in record else ''}",
          flush=True)
    if record.get("tail"):
        print("   " + record["tail"].replace("\n", "\n   "), flush=True)
    write_summary()
    return record


def version_of(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unavailable ({error})"
    return (done.stdout + done.stderr).strip().splitlines()[-1] if done.returncode == 0 else "unavailable"


PROBE = """
import json, sys
found = {"python": sys.version.split()[0]}
for name in ("torch", "triton", "setuptools", "wheel", "pybind11", "numpy", "pytest", "hypothesis", "xdist"):
    try:
        found[name] = __import__(name).__version__
    except Exception as error:
        found[name] = None
import torch
found["torch_cuda"] = torch.version.cuda
found["gpu"] = torch.cuda.is_available()
if found["gpu"]:
    found["device"] = torch.cuda.get_device_name(0)
    found["capability"] = "%d.%d" % torch.cuda.get_device_capability(0)
    found["sms"] = torch.cuda.get_device_properties(0).multi_processor_count
print(json.dumps(found))
"""


def preflight() -> None:
    record = {"name": "preflight"}
    SUMMARY["phases"].append(record)
    print("== preflight", flush=True)
    started = time.monotonic()
    found: dict = {"platform": platform.platform()}
    nvidia_smi = shutil.which("nvidia-smi")
    found["nvidia_smi"] = version_of([nvidia_smi, "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                                      "--format=csv,noheader"]) if nvidia_smi else "not found"
    nvcc = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if Path("/usr/local/cuda/bin/nvcc").exists() else None)
    found["nvcc"] = version_of([nvcc, "--version"]) if nvcc else "not found"
    sanitizer = shutil.which("compute-sanitizer") or next(
        (str(p) for p in (Path("/usr/local/cuda/bin/compute-sanitizer"),) if p.exists()), None)
    found["compute_sanitizer"] = sanitizer or "not found"
    try:
        probe = subprocess.run([PYTHON, "-c", PROBE], capture_output=True, text=True, timeout=60)
        found.update(json.loads(probe.stdout.strip().splitlines()[-1]) if probe.returncode == 0 else
                     {"python_error": tail(probe.stderr)})
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError) as error:
        found["python_error"] = str(error)
    missing = [name for name in ("torch", "setuptools", "pybind11", "pytest") if not found.get(name)]
    if nvcc is None:
        missing.append("nvcc")
    # The build, without network: pip without build isolation (an editable install), which needs the wheel package
    # from setuptools older than 70.1; else setup.py's build_ext in place, which needs neither pip nor wheel.
    setuptools_major = int(str(found.get("setuptools") or "0").split(".")[0])
    if found.get("wheel") or setuptools_major >= 71:
        build = [PYTHON, "-m", "pip", "install", "--no-build-isolation", "--no-deps", "--no-index", "-e", "."]
    else:
        build = [PYTHON, "setup.py", "build_ext", "--inplace"]
    found["build_path"] = " ".join(build[1:])
    SUMMARY["build_command"] = build
    SUMMARY["environment"] = found
    SUMMARY["gpu"] = bool(found.get("gpu")) and not missing
    if not found.get("gpu"):
        SUMMARY["no_gpu_reason"] = f"torch sees no CUDA GPU (nvidia-smi: {found['nvidia_smi']})"
    elif missing:
        SUMMARY["no_gpu_reason"] = f"missing: {', '.join(missing)}"
    record.update(status="passed" if SUMMARY["gpu"] else "failed", seconds=round(time.monotonic() - started, 1),
                  **({"reason": SUMMARY["no_gpu_reason"]} if not SUMMARY["gpu"] else {}))
    SUMMARY["sanitizer_path"] = sanitizer
    print("   " + json.dumps(found), flush=True)
    print(f"   {record['status']}" + (f": {record['reason']}" if "reason" in record else ""), flush=True)
    write_summary()


def sanitizer_findings(output: str) -> dict:
    errors = [int(n) for n in re.findall(r"ERROR SUMMARY: (\d+) error", output)]
    return {"sanitizer_runs": len(errors), "sanitizer_errors": sum(errors)}


def pytest_counts(output: str) -> dict:
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|errors?)\b", output)}
    return {"tests": counts}


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "phases.log").unlink(missing_ok=True)
    preflight()
    pytest = [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE"]
    bench = [PYTHON, "-m", "fusedadam", "bench", "--device", "cuda", "--plain", "--repeats", "10"]
    # Limits from the first H200 run: build 100 s on 16 cores, info 17, GPU tests 32, the benchmark 132, the
    # precision and compiled benchmarks about 100 together; the matrix did not finish in 185 s on 4 workers.
    phase("build", 150, SUMMARY["build_command"], needs_gpu=False,
          env={"FUSEDADAM_CUDA_ARCHS": os.environ.get("FUSEDADAM_CUDA_ARCHS", "90")})
    phase("info", 30, [PYTHON, "-m", "fusedadam", "info", "--kernels"], needs_gpu=False)
    # What only a GPU shows, first: one launch for thousands of tensors, 2^31 + 1 elements, CUDA graphs, streams,
    # devices, checkpoints between GPU and CPU (tests/test_gpu.py, bench/NOTES.md lists them).
    phase("gpu-tests", 60, pytest + ["-m", "gpu", "tests/test_gpu.py"], parse=pytest_counts)
    phase("bench", 160, bench + ["--dtype", "fp32", "bf16", "--presets", "flat-max", "gpt2-124m", "llama-1b",
                                 "many-small-10000x4096", "host-1000x16", "--impls", "torch-forloop", "torch-foreach",
                                 "torch-fused", "fusedadam-cuda", "fusedadam-triton", "--json", str(OUT / "bench.json")])
    # 8-bit moments in both kernels: backend="auto" takes the faster (backends.EIGHT_BIT_AUTO_ORDER).
    phase("bench-precision", 110, bench + ["--dtype", "bf16", "fp32", "--presets", "gpt2-124m", "llama-1b",
                                           "--impls", "torch-fused", "fusedadam-cuda", "fusedadam-cuda+master",
                                           "fusedadam-cuda+bf16-states", "fusedadam-cuda+stochastic",
                                           "fusedadam-cuda+kahan", "fusedadam-cuda+8bit", "fusedadam-triton+master",
                                           "fusedadam-triton+kahan", "fusedadam-triton+8bit", "bitsandbytes-adamw8bit",
                                           "torchao-adamw8bit", "--json", str(OUT / "bench-precision.json")])
    phase("bench-compiled", 45, bench + ["--dtype", "fp32", "--presets", "gpt2-124m", "--impls", "torch-fused",
                                         "torch-compiled", "fusedadam-cuda", "fusedadam-triton",
                                         "--json", str(OUT / "bench-compiled.json")])
    # 10000 tensors ran at 13% of the probe, 12x torch fused: host time per step against the kernel's time.
    phase("profile-many-small", 40, [PYTHON, "-m", "fusedadam", "profile", "--device", "cuda", "--preset",
                                     "many-small-10000x4096", "--impl", "fusedadam-cuda", "--steps", "10"])
    workers = ["-n", str(min(8, os.cpu_count() or 1))] if SUMMARY["environment"].get("xdist") else []
    phase("matrix", 200, pytest + workers + ["-m", "gpu", "--maxfail=20", "tests/test_eight_bit_states.py",
                                             "tests/test_correctness.py", "tests/test_grad_scaler.py",
                                             "tests/test_precision_modes.py", "tests/test_storage_rounding.py"],
          parse=pytest_counts)
    # The 8-bit step's piece shapes (it reached 60-63% of the probe on the first run; bench/NOTES.md).
    phase("sweep-8bit", 120, [PYTHON, "bench/eight_bit_sweep.py", "--presets", "llama-1b", "--json",
                              str(OUT / "sweep-8bit.json")])
    sanitizer = SUMMARY.get("sanitizer_path") or "compute-sanitizer"
    for backend in ("cuda", "triton"):
        phase(f"sanitizer-{backend}", 120, ["bash", "-c", " && ".join(
            f"{sanitizer} --tool {tool} --error-exitcode 3 {PYTHON} bench/sanitizer_problem.py --backend {backend}"
            for tool in ("memcheck", "racecheck", "synccheck"))], parse=sanitizer_findings)
    write_summary()
    print("== summary", flush=True)
    for record in SUMMARY["phases"]:
        extra = {k: record[k] for k in ("tests", "sanitizer_errors", "reason") if k in record}
        print(f"{record['name']:<18} {record['status']:<10} {record.get('seconds', 0):>6} s  {extra or ''}", flush=True)
    for report in ("bench.json", "bench-precision.json", "bench-compiled.json", "sweep-8bit.json"):
        if (OUT / report).exists():
            shown = subprocess.run([PYTHON, "-c", "import json, sys; from fusedadam.bench.report import format_table; "
                                    "print(format_table(json.load(open(sys.argv[1]))))", str(OUT / report)],
                                   cwd=ROOT, capture_output=True, text=True)
            print(shown.stdout or shown.stderr, flush=True)
    return 0 if all(r["status"] == "passed" for r in SUMMARY["phases"]) else 1


if __name__ == "__main__":
    sys.exit(main())
