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
    assert written <= {"summary.json", "bench.json", "bench-precision.json", "bench-compiled.json", "phases.log"}
    summary = json.loads((tmp_path / "summary.json").read_text())
    status = {phase["name"]: phase["status"] for phase in summary["phases"]}
    assert list(status)[:4] == ["preflight", "build", "info", "gpu-tests"]
    assert status["build"] == status["info"] == "passed"
    gpu_phases = ["gpu-tests", "bench", "bench-precision", "bench-compiled", "matrix", "sanitizer-cuda",
                  "sanitizer-triton"]
    assert all(status[name] == "failed" for name in gpu_phases), status
    log = (tmp_path / "phases.log").read_text()
    assert "===== build (passed" in log and "===== info (passed" in log
