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
