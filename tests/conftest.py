import os

# The Triton interpreter must be chosen before triton is first imported (DESIGN.md section 5).
os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _cpu_isa(request, monkeypatch):
    """A test parametrized with a BackendSpec naming a CPU ISA variant steps with that variant (read at every step)."""
    params = getattr(getattr(request.node, "callspec", None), "params", {})
    isa = getattr(params.get("backend"), "cpu_isa", None)
    if isa is not None:
        monkeypatch.setenv("FUSEDADAM_CPU_ISA", isa)
    yield


@pytest.fixture(autouse=True)
def _seeded():
    """Every test draws fresh random data from its own seed: reproducible, never zeros."""
    torch.manual_seed(1234)
    yield
