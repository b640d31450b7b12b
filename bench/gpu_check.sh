#!/usr/bin/env bash
# The one prepared GPU command (DESIGN.md section 6): build for sm_90 only, run the GPU-only tests, the benchmark
# beside torch's implementations with the in-run bandwidth ceiling, compute-sanitizer over a small mixed problem,
# the correctness matrix on the GPU, and the precision-mode and torch.compile benchmarks. JSON, logs and
# summary.json land in $OUT (the summary even when phases fail); a short table is printed last. The phases share a
# budget of GPU_CHECK_BUDGET seconds (default 450), so the whole run stays under 8 minutes.
#
#   OUT=/tmp/out FUSEDADAM_COMMIT=$(git rev-parse HEAD) bash bench/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 TRITON_INTERPRET=0 GPU_CHECK_BUDGET="${GPU_CHECK_BUDGET:-450}"
exec "${PYTHON:-python3}" bench/gpu_check.py
