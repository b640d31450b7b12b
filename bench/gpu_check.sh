#!/usr/bin/env bash
# The one prepared GPU command (DESIGN.md section 6): build for sm_90 only, run the GPU tests, run the GPU
# benchmark with the in-run bandwidth ceiling and torch's implementations beside ours, and leave JSON and
# logs in $OUT. Prints a short table last. Budget: under 10 minutes on an H100/H200.
#
#   OUT=/tmp/out FUSEDADAM_COMMIT=$(git rev-parse HEAD) bash bench/gpu_check.sh
#
# Each phase has its own time limit, so one that hangs cannot eat the others' time; the script goes on
# after a failed phase and exits non-zero at the end.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-bench/results/local}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TRITON_INTERPRET=0 FUSEDADAM_CUDA_ARCHS="${FUSEDADAM_CUDA_ARCHS:-90}"
PYTHON="${PYTHON:-python3}"
status=0
phase() {  # phase NAME SECONDS COMMAND...: runs it under a time limit, logs to $OUT/NAME.log
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit}s)"
  local start=$SECONDS
  timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  tail -n 15 "$OUT/$name.log"
  echo "== $name: exit $rc after $((SECONDS - start))s"
  [ $rc -eq 0 ] || status=1
}

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv > "$OUT/gpu.csv" 2>&1
phase build 150 "$PYTHON" -m pip install --no-build-isolation --no-deps --no-index -e .
phase info 30 "$PYTHON" -m fusedadam info
phase tests 240 "$PYTHON" -m pytest -q -p no:cacheprovider -m gpu --maxfail=20 tests
phase bench 200 "$PYTHON" -m fusedadam bench --device cuda --plain --repeats 10 --dtype fp32 bf16 \
  --presets flat-max gpt2-124m llama-1b many-small-10000x4096 host-1000x16 \
  --impls torch-forloop torch-foreach torch-fused fusedadam-cuda fusedadam-triton \
  --json "$OUT/bench.json"
# The precision modes (precision.py) on bf16 parameters, and bf16 states on fp32 ones, beside plain steps.
phase bench-precision 90 "$PYTHON" -m fusedadam bench --device cuda --plain --repeats 10 --dtype bf16 fp32 \
  --presets gpt2-124m llama-1b --impls torch-fused fusedadam-cuda fusedadam-cuda+master fusedadam-cuda+bf16-states \
  fusedadam-cuda+stochastic fusedadam-cuda+kahan fusedadam-triton+master fusedadam-triton+kahan \
  --json "$OUT/bench-precision.json"
# torch.compile'd AdamW compiles once per preset (tens of seconds each): one preset, beside the fused ones.
phase bench-compiled 120 "$PYTHON" -m fusedadam bench --device cuda --plain --repeats 10 --dtype fp32 \
  --presets gpt2-124m --impls torch-fused torch-compiled fusedadam-cuda fusedadam-triton \
  --json "$OUT/bench-compiled.json"

echo "== summary"
cat "$OUT/gpu.csv"
for report in "$OUT/bench.json" "$OUT/bench-precision.json" "$OUT/bench-compiled.json"; do
  [ -f "$report" ] && "$PYTHON" -c "import json, sys; from fusedadam.bench.report import format_table; \
print(format_table(json.load(open(sys.argv[1]))))" "$report"
done
exit $status
