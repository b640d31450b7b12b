"""The Triton kernel compiles for the GPUs we ship for (sm_80, sm_90) on a machine without one, with
16-byte accesses and IEEE-rounded math: a kernel that would not compile fails CI, not a user's first step."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")


def test_kernel_compiles_for_sm80_and_sm90_with_vector_accesses_and_exact_math():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, str(Path(__file__).with_name("triton_compile_check.py")), "80", "90"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert {r["arch"] for r in results} == {80, 90} and len(results) == 22
    for r in results:
        assert r["cubin_bytes"] > 0, r
        # Every array is read and written through 16-byte accesses in the unmasked body: p (or the master copy),
        # g, m, v, vmax with amsgrad, and the Kahan compensation.
        arrays = 4 + r["amsgrad"] + (r["update"] == 3)
        assert r["vector_loads"] >= arrays, r
        assert r["vector_stores"] >= arrays - 1 + (r["update"] == 1), r
        assert r["approximate_math"] == 0, r
