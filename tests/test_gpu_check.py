"""Pieces of the prepared GPU run (bench/gpu_check.sh) that can run without a GPU, so that a lent GPU's minutes are
not spent finding their mistakes: the sanitizer's problem runs through the host-played CUDA kernel."""
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
