import os

# The Triton interpreter must be chosen before triton is first imported (DESIGN.md section 5).
os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _seeded():
    """Every test draws fresh random data from its own seed: reproducible, never zeros."""
    torch.manual_seed(1234)
    yield
