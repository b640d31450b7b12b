"""Which tensors a flat-memory kernel can walk: the ones whose elements fill one block of memory."""
from __future__ import annotations

import torch


def is_dense(t: torch.Tensor) -> bool:
    """True when the elements of `t` occupy exactly numel() consecutive slots, in any dimension order
    (a contiguous tensor, or a transposed / permuted view of one). zeros_like(t) then has the same
    strides, so p, g, m and v can be processed as flat arrays element by element."""
    if t.is_contiguous():
        return True
    expected = 1
    dims = sorted(((st, s) for s, st in zip(t.shape, t.stride()) if s != 1))
    for stride, size in dims:
        if stride != expected:
            return False
        expected *= size
    return True


def kernel_unsupported_reason(p: torch.Tensor, backend: str, devices: tuple[str, ...],
                              dtypes: tuple[torch.dtype, ...]) -> str | None:
    """Why a native kernel (which walks p, g, m, v as flat arrays of one dtype) cannot step `p`, or None."""
    if p.device.type not in devices:
        return f"it is on {p.device}, and the {backend} backend steps tensors on {' or '.join(devices)} here"
    if p.dtype not in dtypes:
        return f"its dtype {p.dtype} is not one of {', '.join(str(d).replace('torch.', '') for d in dtypes)}"
    if type(p) not in (torch.Tensor, torch.nn.Parameter):
        return f"it is a tensor subclass ({type(p).__name__})"
    if not is_dense(p):
        return "it is a view whose elements are not one dense block (e.g. a slice with a step)"
    return None
