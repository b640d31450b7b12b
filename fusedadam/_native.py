"""Loads the compiled module fusedadam._C once; a failed load becomes an error when a native backend is
used, never at `import fusedadam` (the torch backend and the reference work without it)."""
from __future__ import annotations

import importlib

_module = None
_error: BaseException | None = None
_loaded = False


def native():
    """The module fusedadam._C; raises RuntimeError naming the cause when it could not be loaded."""
    module = try_native()
    if module is None:
        raise RuntimeError(
            f"fusedadam's native module fusedadam._C could not be loaded ({_error!r}); build it with "
            "`pip install --no-build-isolation -e .` from the repository, or use backend='torch'"
        )
    return module


def try_native():
    """The module fusedadam._C, or None when it is not built."""
    global _module, _error, _loaded
    if not _loaded:
        _loaded = True
        try:
            _module = importlib.import_module("fusedadam._C")
        except ImportError as error:  # not built, or built for another Python
            _error = error
    return _module


def load_error() -> BaseException | None:
    try_native()
    return _error
