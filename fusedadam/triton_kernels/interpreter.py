import os


def interpreting() -> bool:
    """True when Triton runs kernels in its CPU interpreter (TRITON_INTERPRET=1, set before triton's import)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
