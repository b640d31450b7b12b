"""The memory-bandwidth ceiling with Adam's access pattern (DESIGN.md section 4), measured in the same run
as the optimizers: 4 arrays read and 3 of them written back in place, as many bytes as the preset moves."""
from __future__ import annotations

import torch

from .._native import native


class BandwidthProbe:
    """Four arrays, each as large as the preset's parameters; one call moves 7 x that many bytes."""

    def __init__(self, bytes_per_array: int, device: torch.device):
        words = max(1, bytes_per_array // 4)
        self.device = device
        self.arrays = [torch.randint(-2**31, 2**31 - 1, (words,), dtype=torch.int32, device=device)
                       for _ in range(4)]
        self.words = words
        self.bytes_moved = 7 * 4 * words

    def step(self) -> None:
        a, b, c, d = (t.data_ptr() for t in self.arrays)
        if self.device.type == "cpu":
            native().bandwidth_probe_cpu(a, b, c, d, self.words, torch.get_num_threads())
        else:
            stream = torch.cuda.current_stream(self.device).cuda_stream
            native().bandwidth_probe_cuda(self.device.index or 0, stream, a, b, c, d, self.words)
