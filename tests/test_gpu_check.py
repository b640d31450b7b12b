"""Pieces of the prepared GPU run (bench/gpu_check.sh) that can run without a GPU, so that a lent GPU's minutes are
not spent finding their mistakes: the sanitizer's problem runs through the host-played CUDA kernel, and the run
leaves its summary in the few files the lease returns."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from specs import BACKEND_SPECS, require

ROOT = Path(__file__).resolve().parent.parent


def test_the_sanitizer_problem_steps_every_mode_with_a_skip_on_the_host_played_kernel():
    require(next(s for s in BACKEND_SPECS if s.name == "cuda-host"))
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "sanitizer_problem.py"), "--backend", "cuda-host"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "every storage dtype and precision mode: done" in done.stdout


def test_the_gpu_run_leaves_a_summary_of_every_phase_in_few_enough_files(tmp_path):
    """The lease returns at most 8 files from $OUT: the run writes summary.json, the benchmarks' JSON and one
    phases.log with every phase's output, and its summary names every phase even when none could do its work (here
    the phases' Python is `true`: the build and info "pass" at once, every GPU phase fails naming the reason)."""
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py")], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "OUT": str(tmp_path), "PYTHON": shutil.which("true")})
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    written = {p.name for p in tmp_path.iterdir()}
    assert written <= {"summary.json", "bench.json", "bench-precision.json", "bench-compiled.json", "sweep-8bit.json",
                       "phases.log"}
    summary = json.loads((tmp_path / "summary.json").read_text())
    status = {phase["name"]: phase["status"] for phase in summary["phases"]}
    assert list(status)[:4] == ["preflight", "build", "info", "gpu-tests"]
    assert status["build"] == status["info"] == "passed"
    gpu_phases = ["gpu-tests", "bench", "bench-precision", "bench-compiled", "profile-many-small", "matrix",
                  "sweep-8bit", "sanitizer-cuda", "sanitizer-triton"]
    assert all(status[name] == "failed" for name in gpu_phases), status
    log = (tmp_path / "phases.log").read_text()
    assert "===== build (passed" in log and "===== info (passed" in log


def test_the_eight_bit_sweep_times_every_configuration_beside_torch_and_the_probe(tmp_path):
    """bench/eight_bit_sweep.py, which the GPU run uses to choose the 8-bit pieces' shape, runs end to end here under
    Triton's interpreter: a row for each configuration, torch fused and the probe, for each dtype asked."""
    require(next(s for s in BACKEND_SPECS if s.name == "triton" and s.device == "cpu"))
    report_path = tmp_path / "sweep.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "eight_bit_sweep.py"), "--device", "cpu", "--presets",
                           "flat-8192", "--dtype", "fp32", "bf16", "--repeats", "1", "--json", str(report_path)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "TRITON_INTERPRET": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from eight_bit_sweep import CONFIGURATIONS
    finally:
        sys.path.remove(str(ROOT / "bench"))
    rows = json.loads(report_path.read_text())["results"]
    for dtype in ("float32", "bfloat16"):
        names = [row["impl"] for row in rows if row["dtype"] == dtype]
        assert names == ["torch-fused", *(f"triton+8bit {e}/thread {w} warps" for e, w in CONFIGURATIONS),
                         "ceiling (4R+3W probe)"]
        assert all(row["ms"] > 0 and row["bytes_per_param"] < 17 for row in rows if "8bit" in row["impl"])
