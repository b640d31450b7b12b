#!/usr/bin/env bash
# The memory-safety check: the native module built with AddressSanitizer (the CPU kernel, the bindings, and the CUDA
# kernel's code as compiled for the host), then the tests that drive native code from Python run against it: the
# state machine that swaps p.data, gradients and state tensors between steps, the launch table, strided and odd
# layouts, the 8-bit maps of the moments on raw buffers, and the correctness matrix of the CPU kernel and of the
# host-played CUDA kernel (its 8-bit moments included). Any report from ASan fails the run; .ci/run times it.
#
#   bash scripts/asan_check.sh                          (after scripts/setup.sh; CI runs it)
#   bash scripts/asan_check.sh --build-only WORK_DIR    only the build, in WORK_DIR, which is kept
#   bash scripts/asan_check.sh WORK_DIR                 build (cached objects from an earlier build there), then test
#
# It builds in a copy of the tracked files, so the main build stays as it is: a temporary folder, removed at the end,
# unless WORK_DIR is given. CI builds in the background while the main suite runs (pytest leaves most of a core idle),
# then runs the tests on that build. Leak detection is off: CPython and torch keep allocations alive until exit on
# purpose, which is not what this check is about.
set -euo pipefail
build_only=0
if [ "${1:-}" = "--build-only" ]; then
  build_only=1
  shift
fi
work=${1:-}
if [ "$build_only" = 1 ] && [ -z "$work" ]; then
  echo "asan_check: --build-only needs the WORK_DIR to keep the build in" >&2
  exit 2
fi
if [ -n "$work" ]; then
  mkdir -p "$work"
  work=$(cd "$work" && pwd)
fi
cd "$(dirname "$0")/.."
repo=$PWD
python="$repo/.venv/bin/python"
libasan=$(gcc -print-file-name=libasan.so)
if [ ! -e "$libasan" ]; then
  echo "asan_check: gcc has no libasan.so here ($libasan); install the gcc AddressSanitizer runtime" >&2
  exit 1
fi

if [ -z "$work" ]; then
  work=$(mktemp -d /tmp/fusedadam-asan.XXXXXX)
  trap 'rm -rf "$work"' EXIT
fi
git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$work"
cd "$work"

echo "== build with FUSEDADAM_SANITIZE=address in $work"
# ASan instruments host code only, and the device code never runs here: one architecture's unoptimized PTX
# (setup.py), which the tests know of (tests/test_native.py).
export FUSEDADAM_CUDA_ARCHS=80 FUSEDADAM_CUDA_DEVICE_CODE=unoptimized-ptx
FUSEDADAM_SANITIZE=address "$python" setup.py -q build_ext --inplace >build.log 2>&1 || { tail -50 build.log; exit 1; }
if [ "$build_only" = 1 ]; then
  exit 0
fi

# halt_on_error: the first report ends the process, so pytest fails; abort_on_error=0 keeps the report readable.
# libstdc++ is preloaded with the runtime: Python itself does not link it, and ASan's __cxa_throw interceptor must
# find it at start-up, or the first C++ exception torch throws (a RuntimeError the tests expect) stops the process.
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0:print_summary=1"
export LD_PRELOAD="$libasan $(gcc -print-file-name=libstdc++.so)"
"$python" -c "import sys; sys.path.insert(0, '.'); import fusedadam._C as c; assert c.__file__.startswith('$work'), c.__file__"
export FUSEDADAM_STATE_MACHINE_EXAMPLES="${FUSEDADAM_STATE_MACHINE_EXAMPLES:-200}"
"$python" -m pytest -q -p no:cacheprovider -x \
  tests/test_state_machine.py tests/test_between_steps.py tests/test_state_table.py tests/test_native.py \
  tests/test_launch_table.py tests/test_device_runner.py tests/test_errors.py tests/test_cuda_kernel_on_host.py \
  tests/test_layout.py tests/test_properties.py tests/test_api.py tests/test_quantization.py
# The CPU kernel as this machine runs it, not again as each other ISA variant (ids "-isa-"): every variant reads and
# writes the same groups and tails (adam_span.h), only the conversion instructions inside a group differ, and the main
# suite checks those bit for bit. (The shape class of 3000 tiny tensors runs under two modes in the suite itself:
# tests/specs.py, MODES_FOR_THOUSANDS.)
"$python" -m pytest -q -p no:cacheprovider -x tests/test_correctness.py tests/test_precision_modes.py \
  tests/test_grad_scaler.py -k "(cpu-cpu or cuda-host-cpu) and not -isa-"
# 8-bit moments: the codes, absmaxes and block-aligned thread slices the CPU kernel reads and writes, as it runs here,
# and the CUDA kernel's warps over blocks (short last blocks, codes off alignment), played on the host.
"$python" -m pytest -q -p no:cacheprovider -x tests/test_eight_bit_states.py tests/test_cuda_kernel_8bit_on_host.py \
  -k "not -isa-"
