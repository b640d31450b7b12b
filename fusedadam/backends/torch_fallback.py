"""The `torch` backend: torch's own functional Adam, for whatever a native backend does not cover
(complex parameters, tensor subclasses, non-dense views, devices without a native kernel).

Unless the group asks for foreach or fused explicitly, it uses torch's fused kernel where torch has one:
like the native backends, that computes 16-bit storage in fp32, so a group's numbers do not depend on
which backend "auto" picked. (torch's default CPU path computes fp16 in fp16, where eps=1e-8 rounds to 0.)
torch 2.13's fused CPU kernel silently walks memory as if every tensor were dense and laid out like its
parameter, so it is only chosen when that holds: strided views and mismatched gradients take torch's
default path. Nor for fp32 / fp64 with AMSGrad: the fused kernel's max drops a NaN (max_exp_avg_sq keeps
its old value), where torch's default paths (for-loop on the CPU, foreach on CUDA) and fusedadam's kernels
propagate it. 16-bit parameters keep the fused kernel's fp32 math with AMSGrad too, and its NaN handling."""
from __future__ import annotations

from typing import Sequence

import torch
from torch.optim.adam import adam as torch_functional_adam

from ..layout import is_dense
from .amp import AmpScaling, unscale_on_host
from .base import StateLayout, StateOf, StepConfig


class TorchRunner:
    def __init__(self, params: Sequence[torch.Tensor], state_of: StateOf, layout: StateLayout):
        self._params = list(params)
        self._state_of = state_of
        self._amsgrad = layout.amsgrad
        self._has_complex = any(torch.is_complex(p) for p in self._params)
        self._grads: list[torch.Tensor] = []
        # What the plan was validated for: a parameter given another shape, dtype or device (p.data = ..., set_) or
        # a gradient that no longer matches it sends the step back to the optimizer's checks. torch's fused CPU
        # kernel does not check sizes itself: stepped with a 6-element state under an 8-element parameter it
        # corrupts the heap (torch 2.13).
        self._planned = [(p.shape, p.dtype, p.device) for p in self._params]
        fused_devices = _fused_devices()
        sixteen_bit = all(p.dtype in (torch.float16, torch.bfloat16) for p in self._params)
        self._fused_by_default = not self._has_complex and (sixteen_bit or not layout.amsgrad) and all(
            p.device.type in fused_devices and state_of(p)["step"].device == p.device and is_dense(p)
            for p in self._params)

    def gather_grads(self) -> bool:
        grads = [p.grad for p in self._params]
        if any(g is None or g.layout != torch.strided for g in grads):
            return False
        for p, g, (shape, dtype, device) in zip(self._params, grads, self._planned):
            if not (p.shape == g.shape == shape and p.dtype == g.dtype == dtype and p.device == g.device == device):
                return False
        self._grads = grads
        return True

    def set_grads(self, grads: Sequence[torch.Tensor]) -> None:
        self._grads = list(grads)

    def run(self, config: StepConfig, scaling: AmpScaling | None = None) -> None:
        states = [self._state_of(p) for p in self._params]
        fused = config.fused
        if fused is None and config.foreach is None:
            fused = self._fused_by_default and all(
                g.stride() == p.stride() and s["exp_avg"].stride() == p.stride()
                for p, g, s in zip(self._params, self._grads, states))
        grad_scale = found_inf = None
        if scaling is not None:
            if fused:  # torch's fused kernels take GradScaler's tensors themselves
                scaling = scaling.on(self._params[0].device)
                grad_scale, found_inf = scaling.grad_scale, scaling.found_inf
                if found_inf is not None:
                    # They skip only when found_inf == 1, but GradScaler sums its per-device flags.
                    found_inf = (found_inf != 0).to(torch.float32)
            elif not unscale_on_host(self._grads, scaling):
                self._grads = []
                return
        torch_functional_adam(
            self._params,
            self._grads,
            [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states],
            [s["max_exp_avg_sq"] for s in states] if self._amsgrad else [],
            [s["step"] for s in states],
            foreach=config.foreach,
            capturable=config.capturable,
            differentiable=False,
            fused=fused,
            has_complex=self._has_complex,
            decoupled_weight_decay=config.decoupled_weight_decay,
            amsgrad=config.amsgrad,
            beta1=config.beta1,
            beta2=config.beta2,
            lr=config.lr,
            weight_decay=config.weight_decay,
            eps=config.eps,
            maximize=config.maximize,
            grad_scale=grad_scale,
            found_inf=found_inf,
        )
        self._grads = []


def _fused_devices() -> set[str]:
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
        return set(_get_fused_kernels_supported_devices())
    except ImportError:  # older torch: fused Adam exists on CUDA only
        return {"cuda"}


class TorchBackend:
    name = "torch"
    steps_eight_bit = False  # torch.optim has no 8-bit moments

    def unavailable_reason(self) -> str | None:
        return None

    def unsupported_reason(self, p: torch.Tensor) -> str | None:
        return None

    def make_runner(self, params, state_of: StateOf, layout: StateLayout) -> TorchRunner:
        return TorchRunner(params, state_of, layout)
