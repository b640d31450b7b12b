#!/usr/bin/env bash
# The one prepared GPU command (DESIGN.md section 6): build for sm_90 only, run the GPU-only tests, the benchmark
# beside torch's implementations with the in-run bandwidth ceiling, the precision-mode and torch.compile benchmarks,
# the correctness matrix on the GPU, the 8-bit piece-shape sweep, and compute-sanitizer over a small mixed problem.
# JSON, phases.log and summary.json land in $OUT (the summary even when phases fail); a short table is printed last.
# The phases share a budget of GPU_CHECK_BUDGET seconds (default 560): give the device call a timeout_s of about
# 590, which leaves a 15-minute lease about 4 minutes for a second call on the warm machine.
#
#   OUT=/tmp/out FUSEDADAM_COMMIT=$(git rev-parse HEAD) bash bench/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 TRITON_INTERPRET=0 GPU_CHECK_BUDGET="${GPU_CHECK_BUDGET:-560}"
exec "${PYTHON:-python3}" bench/gpu_check.py
