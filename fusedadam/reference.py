"""Adam, AdamW and AMSGrad in float64: the specification every backend is tested against.

Written from the papers, not from any implementation:
  Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015, Algorithm 1;
  Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019 (AdamW);
  Reddi, Kale & Kumar, "On the Convergence of Adam and Beyond", ICLR 2018 (AMSGrad),
with torch.optim.Adam's conventions: eps is added after the bias-corrected square root, AMSGrad keeps
the maximum of the *biased* second moment, and the step counter is incremented before use.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ReferenceState:
    """One parameter and its optimizer state, all float64."""

    param: torch.Tensor
    exp_avg: torch.Tensor
    exp_avg_sq: torch.Tensor
    max_exp_avg_sq: torch.Tensor
    step: int = 0

    @classmethod
    def fresh(cls, param: torch.Tensor) -> "ReferenceState":
        p = param.detach().to(torch.float64, copy=True)
        return cls(p, torch.zeros_like(p), torch.zeros_like(p), torch.zeros_like(p))


@dataclass(frozen=True)
class AdamConfig:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    amsgrad: bool = False
    maximize: bool = False
    decoupled_weight_decay: bool = False  # True is AdamW

    def torch_kwargs(self) -> dict:
        return dict(lr=self.lr, betas=self.betas, eps=self.eps, weight_decay=self.weight_decay,
                    amsgrad=self.amsgrad, maximize=self.maximize,
                    decoupled_weight_decay=self.decoupled_weight_decay)


def reference_adam_step(s: ReferenceState, grad: torch.Tensor, cfg: AdamConfig) -> None:
    """Algorithm 1, one step, in place on `s`."""
    g = grad.detach().to(torch.float64)
    lr, (beta1, beta2), eps, wd = cfg.lr, cfg.betas, cfg.eps, cfg.weight_decay
    s.step += 1
    t = s.step
    if cfg.maximize:
        g = -g
    if wd != 0:
        if cfg.decoupled_weight_decay:
            s.param.mul_(1 - lr * wd)
        else:
            g = g + wd * s.param
    s.exp_avg.copy_(beta1 * s.exp_avg + (1 - beta1) * g)              # m_t: biased first moment
    s.exp_avg_sq.copy_(beta2 * s.exp_avg_sq + (1 - beta2) * g * g)    # v_t: biased second moment
    second_moment = s.exp_avg_sq
    if cfg.amsgrad:
        torch.maximum(s.max_exp_avg_sq, s.exp_avg_sq, out=s.max_exp_avg_sq)
        second_moment = s.max_exp_avg_sq
    bias_correction1 = 1 - beta1 ** t
    bias_correction2 = 1 - beta2 ** t
    m_hat = s.exp_avg / bias_correction1
    v_hat_sqrt = second_moment.sqrt() / bias_correction2 ** 0.5
    s.param.sub_(lr * m_hat / (v_hat_sqrt + eps))
