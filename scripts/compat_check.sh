#!/usr/bin/env bash
# The compatibility check: fusedadam built and tested against another torch than the main environment's, in a venv of
# its own. CI runs it for the oldest supported torch (the GPU machine's 2.11, with the Triton 3.6 it pins and an old
# setuptools) and the newest on the index; pyproject.toml and the README state the range.
#
#   bash scripts/compat_check.sh TORCH_VERSION [SETUPTOOLS_VERSION]      e.g. 2.11.0 65.5.0
#   bash scripts/compat_check.sh --install-only TORCH_VERSION [SETUPTOOLS_VERSION]
#
# --install-only sets up the venv and stops (CI does that in the background while the main tests run: unpacking ~5 GB
# of CUDA wheels is a minute of one core); the full check then finds it installed and goes on.
#
# It runs the API, error, compile, native-module and launch-table tests, Triton's compile check, and the correctness
# tests of the Triton kernel in Triton's interpreter: what depends on torch's and Triton's versions (Triton's own
# tests in full only where this venv's Triton differs from the main environment's).
set -euo pipefail
cd "$(dirname "$0")/.."
install_only=0
if [ "${1:-}" = "--install-only" ]; then
  install_only=1
  shift
fi
torch_version=$1
setuptools="setuptools${2:+==$2}"
venv=".venv-torch-$torch_version"

echo "== torch $torch_version with $setuptools in $venv"
python3 -m venv "$venv"
# PyPI's torch wheels are CUDA builds (they run on a CPU) and pin their Triton. The pip configuration of this
# workplace caps torch at the release kept on disk; PIP_CONSTRAINT=/dev/null lifts the cap for this venv only.
PIP_CONSTRAINT=/dev/null "$venv/bin/pip" install --quiet "torch==$torch_version" "$setuptools" wheel "pybind11>=2.12" numpy \
  pytest hypothesis
if ! "$venv/bin/python" -c "import triton" 2>/dev/null; then
  "$venv/bin/pip" install --quiet "triton>=3.6,<3.10"  # a CPU build of torch brings no Triton
fi
"$venv/bin/python" -c "import torch, triton, setuptools; print('torch', torch.__version__, 'triton', triton.__version__, \
'setuptools', setuptools.__version__)"
if [ "$install_only" = 1 ]; then
  exit 0
fi
# The same build a user runs, without build isolation (the installed setuptools and pybind11). The native module is
# torch-free, so the module built here serves the main environment too.
"$venv/bin/pip" install --quiet --no-build-isolation --no-deps -e .
status=0
# Triton's own tests (its compile check, the kernel in its interpreter) where this venv's Triton is not the main
# environment's: torch 2.15 pins the Triton 3.9 that the main suite runs already, so there only a slice of the
# interpreter tests runs, for what torch's version changes in them (the tensors the interpreter is handed).
triton_of() { "$1" -c "import triton; print(triton.__version__)"; }
triton=$(triton_of "$venv/bin/python")
triton_tests=(tests/test_triton_compiles.py)
triton_select="triton-cpu and (not thousands or fp32-adam-thousands)"
if [ "$triton" = "$(triton_of .venv/bin/python 2>/dev/null || true)" ]; then
  echo "== Triton $triton is the main environment's: its compile check is not repeated here"
  triton_tests=()
  triton_select="triton-cpu and fp32 and odd"
fi
"$venv/bin/python" -m pytest -q -p no:cacheprovider tests/test_api.py tests/test_errors.py tests/test_compile.py \
  tests/test_native.py tests/test_launch_table.py tests/test_device_runner.py "${triton_tests[@]}" || status=1
# With another Triton, the shape class of 3000 tiny tensors once (fp32 Adam), not under every dtype: what it adds is
# the launch table's many chunks, which the main suite covers in every dtype.
"$venv/bin/python" -m pytest -q -p no:cacheprovider tests/test_correctness.py tests/test_precision_modes.py \
  tests/test_grad_scaler.py tests/test_storage_rounding.py -k "$triton_select" || status=1
exit $status
