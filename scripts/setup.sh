#!/usr/bin/env bash
# Sets up .venv with what fusedadam needs and builds it in place. Safe to re-run.
#
#   FUSEDADAM_TORCH   the torch to install when .venv has none (default torch==2.13.0; on a machine without a
#                     GPU and without a local CPU wheel, also set PIP_EXTRA_INDEX_URL to PyTorch's CPU index)
#   FUSEDADAM_NO_CUDA=1, FUSEDADAM_CUDA_ARCHS="80;90"   passed on to the build (see README)
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
. .venv/bin/activate
if ! python -c "import torch" 2>/dev/null; then
  pip install --quiet "${FUSEDADAM_TORCH:-torch==2.13.0}"
fi
pip install --quiet "setuptools>=64" "pybind11>=2.12" wheel numpy pytest hypothesis rich matplotlib
# Triton: a CUDA build of torch pins the Triton it was built with (keep that one); a CPU build brings none, so the
# newest release of the supported range (3.6-3.9) is installed for the interpreter tests and the compile check.
if ! python -c "import triton" 2>/dev/null; then
  pip install --quiet "triton>=3.6,<3.10"
fi
# No build isolation: the build needs only setuptools and pybind11, installed just above.
pip install --quiet --no-build-isolation --no-deps -e .
python -m fusedadam info
