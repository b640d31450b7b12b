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

from .precision import MOMENT_MAPS
from .quantization import dequantize_moment, quantize_moment


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


# ------------------------------------------------------------------------------------------------------------------
# The low-memory and mixed-precision modes (fusedadam.precision), emulated: Algorithm 1 in float64, with every value
# the kernels store rounded exactly as they round it (to nearest even in the storage dtype, from the fp32 value the
# kernels compute; stochastically with the same random bits; Kahan's compensation in bf16; 8-bit moments on the maps
# of fusedadam.quantization, block by block in memory order, from their fp32 values).

_MASK32 = 0xFFFFFFFF


def mix32(h: torch.Tensor) -> torch.Tensor:
    """murmur3's 32-bit finalizer on int64 tensors holding uint32 values (csrc/param_update.h mix32)."""
    h = h ^ (h >> 16)
    h = (h * 0x85EBCA6B) & _MASK32
    h = h ^ (h >> 13)
    h = (h * 0xC2B2AE35) & _MASK32
    return h ^ (h >> 16)


def rounding_key(seed: int, salt: int, step: int) -> int:
    """The random stream of one tensor at one step (csrc/param_update.h rounding_key)."""
    h = int(mix32(torch.tensor((seed & _MASK32) ^ 0x3C6EF372)))
    h = int(mix32(torch.tensor(h ^ (seed >> 32))))
    h = int(mix32(torch.tensor(h ^ (salt & _MASK32))))
    return int(mix32(torch.tensor(h ^ (step & _MASK32))))


def rounding_bits(key: int, numel: int) -> torch.Tensor:
    """The 32 random bits of elements 0..numel-1 of a tensor whose stream is `key`, as int64."""
    index = torch.arange(numel, dtype=torch.int64)
    low, high = index & _MASK32, index >> 32
    return mix32(key ^ ((low * 0x9E3779B1) & _MASK32) ^ ((high * 0x85EBCA77) & _MASK32))


def round_to_bf16_stochastically(x: torch.Tensor, random: torch.Tensor) -> torch.Tensor:
    """fp32 `x` to bf16 with `random`'s upper 16 bits added below the kept ones (unbiased); inf and NaN kept."""
    bits = x.float().view(torch.int32).to(torch.int64) & _MASK32
    rounded = ((bits + (random >> 16)) & 0xFFFF0000).to(torch.int64)
    as_float = (rounded - ((rounded >> 31) << 32)).to(torch.int32).view(torch.float32)
    return torch.where(torch.isfinite(x.float()), as_float, x.float()).to(torch.bfloat16)


def stored(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A float64 result as the kernels store it: computed in fp32 (fp64 for fp64 storage), rounded to `dtype`."""
    if dtype == torch.float64:
        return x.clone()
    return x.float().to(dtype).double()


@dataclass
class EmulatedState:
    """One parameter in a low-precision mode: every tensor float64, holding exactly the values storage holds."""

    param: torch.Tensor
    param_dtype: torch.dtype
    state_dtype: torch.dtype
    update: str  # fusedadam.precision.PARAM_UPDATE_CODES
    exp_avg: torch.Tensor
    exp_avg_sq: torch.Tensor
    max_exp_avg_sq: torch.Tensor
    master: torch.Tensor | None = None
    compensation: torch.Tensor | None = None
    step: int = 0
    # 8-bit moments (state_dtype torch.uint8): what is stored, per moment key; the moments above are their values.
    codes: dict = field(default_factory=dict)
    absmax: dict = field(default_factory=dict)


def emulated_adam_step(s: EmulatedState, grad: torch.Tensor, cfg: AdamConfig, seed: int = 0, salt: int = 0) -> None:
    """One step of the mode, in place on `s`: Algorithm 1 in float64 on the stored values, then each result
    rounded where and as the mode stores it."""
    before = (s.master if s.update == "master" else s.param).clone()
    moments = ReferenceState(before.clone(), s.exp_avg.clone(), s.exp_avg_sq.clone(), s.max_exp_avg_sq.clone(),
                             s.step)
    reference_adam_step(moments, grad, cfg)
    s.step = moments.step
    for key in ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if cfg.amsgrad else ()):
        value = getattr(moments, key)
        if s.state_dtype == torch.uint8:
            # The parameter above moved with this step's moments; only what is kept for the next step is quantized.
            s.codes[key], s.absmax[key] = quantize_moment(value.float(), MOMENT_MAPS[key])
            value = dequantize_moment(s.codes[key], s.absmax[key], MOMENT_MAPS[key]).double()
        else:
            value = stored(value, s.state_dtype)
        setattr(s, key, value)
    after = moments.param
    if s.update == "master":
        s.master = stored(after, torch.float32)
        s.param = stored(s.master, s.param_dtype)
    elif s.update == "stochastic":
        random = rounding_bits(rounding_key(seed, salt, s.step), after.numel()).view(after.shape)
        s.param = round_to_bf16_stochastically(after.float(), random).double()
    elif s.update == "kahan":
        # csrc/param_update.h: each operation in fp32, the new parameter and the compensation rounded to bf16.
        update = (after.float() - before.float()) + s.compensation.float()
        new_param = (before.float() + update).to(torch.bfloat16).float()
        s.compensation = (update - (new_param - before.float())).to(torch.bfloat16).double()
        s.param = new_param.double()
    else:
        s.param = stored(after, s.param_dtype)
