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
pip install --quiet "setuptools>=77" "pybind11>=2.12" wheel numpy "triton==3.9.0" pytest hypothesis rich matplotlib
# No build isolation: the build needs only setuptools and pybind11, installed just above.
pip install --quiet --no-build-isolation --no-deps -e .
python -m fusedadam info
