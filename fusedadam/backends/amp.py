"""GradScaler's optimizer contract (`_step_supports_amp_scaling = True`): torch.amp.GradScaler.step sets
`optimizer.grad_scale` (the scale the gradients still carry, or None when already unscaled) and
`optimizer.found_inf` (non-zero when some gradient is inf/NaN) and lets the optimizer unscale and skip.
A skipped step changes nothing: no parameter, no state, no step counter. Device kernels read both tensors
in the kernel (no host synchronization); the host helper below serves the backends that cannot."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch


@dataclass(frozen=True)
class AmpScaling:
    grad_scale: torch.Tensor | None
    found_inf: torch.Tensor | None

    @staticmethod
    def of(optimizer) -> AmpScaling | None:
        grad_scale = getattr(optimizer, "grad_scale", None)
        found_inf = getattr(optimizer, "found_inf", None)
        if grad_scale is None and found_inf is None:
            return None
        return AmpScaling(grad_scale, found_inf)

    def on(self, device: torch.device) -> AmpScaling:
        """The same tensors as float32 on `device` (GradScaler keeps them on its own device)."""
        def moved(t):
            return None if t is None else t.to(device=device, dtype=torch.float32, non_blocking=True)
        return AmpScaling(moved(self.grad_scale), moved(self.found_inf))


def unscale_on_host(grads: Sequence[torch.Tensor], scaling: AmpScaling | None) -> bool:
    """Applies the contract with torch ops: False when the step must be skipped, else the gradients are
    unscaled in place (as the fused kernels write them back) and True."""
    if scaling is None:
        return True
    if scaling.found_inf is not None and scaling.found_inf.item() != 0:
        return False
    if scaling.grad_scale is not None and grads:
        # One foreach call; 16-bit gradients are divided in fp32 and rounded once, as the kernels do.
        torch._foreach_div_(list(grads), scaling.grad_scale.to(device=grads[0].device, dtype=torch.float32))
    return True
