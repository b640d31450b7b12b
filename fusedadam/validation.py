"""Every check on user input, each failing with the parameter's name and the fix, before anything is
modified. The optimizer calls these; they never touch a tensor's values."""
from __future__ import annotations

from numbers import Real

import torch

from .precision import (ABSMAX_KEYS, PRECISION_DEFAULTS, Precision, check_precision_options, needs_native_backend,
                        precision_unsupported_reason)
from .backends import EIGHT_BIT_BACKENDS
from .sharded_absmax import absmax_placement_mismatch, absmax_shape, unsupported_reason as sharding_unsupported_reason

BACKEND_NAMES = ("auto", "cpu", "cuda", "triton", "torch", "cuda-host")


def _as_float(name: str, value) -> float | None:
    """The value as a float; None for a tensor on an accelerator (reading it would synchronize)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a float or a 1-element tensor, got a tensor of shape {tuple(value.shape)}")
        if value.is_complex() or not (value.is_floating_point() or value.dtype in (torch.int32, torch.int64)):
            raise ValueError(f"{name} must be a real number, got a tensor of dtype {value.dtype}")
        return float(value.item()) if value.device.type == "cpu" else None
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    return float(value)


def check_constructor_arguments(lr, betas, eps, weight_decay, foreach, capturable, differentiable, fused) -> None:
    """The checks torch.optim.Adam's and AdamW's constructors make (torch 2.13), with the exception types torch
    raises, so that code catching torch's errors catches ours. The group-level checks follow in
    check_hyperparameters."""
    if isinstance(lr, torch.Tensor):
        if foreach and not capturable:
            raise ValueError("lr as a Tensor is not supported for capturable=False and foreach=True (as in "
                             "torch.optim.Adam); pass capturable=True or a float lr")
        if lr.numel() != 1:
            raise ValueError(f"Tensor lr must be 1-element, got shape {tuple(lr.shape)}")
    if not isinstance(betas, (tuple, list)):
        raise TypeError(f"betas must be a pair (beta1, beta2), got {type(betas).__name__} {betas!r}")
    for name, value in (("lr", lr), ("eps", eps), ("weight_decay", weight_decay),
                        *((f"betas[{i}]", b) for i, b in enumerate(betas))):
        if not isinstance(value, (torch.Tensor, Real)) or isinstance(value, complex):
            raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    both_floats, both_tensors = (all(isinstance(b, kind) for b in betas) for kind in (float, torch.Tensor))
    if len(betas) == 2 and not (both_floats or both_tensors):
        raise ValueError(f"betas must be either both floats or both Tensors (as in torch.optim.Adam), got {betas!r}")
    for index, beta in enumerate(betas):
        if isinstance(beta, torch.Tensor):
            if foreach and not capturable:
                raise ValueError(f"betas[{index}] as a Tensor is not supported for capturable=False and foreach=True "
                                 "(as in torch.optim.Adam)")
            if beta.numel() != 1:
                raise ValueError(f"Tensor betas[{index}] must be 1-element, got shape {tuple(beta.shape)}")
    if fused and differentiable:
        raise RuntimeError("`fused` does not support `differentiable`")
    if fused and foreach:
        raise RuntimeError("`fused` and `foreach` cannot be `True` together.")


def check_hyperparameters(group: dict, where: str = "") -> None:
    """Raises ValueError for any hyperparameter torch.optim.Adam would reject, and for NaNs it accepts."""
    lr = group["lr"]
    lr_value = _as_float(f"lr{where}", lr)
    if isinstance(lr, torch.Tensor) and lr.device.type != "cpu" and not group.get("capturable", False):
        raise ValueError(f"lr{where} is a tensor on {lr.device}: a device lr needs capturable=True "
                         "(as in torch.optim.Adam); otherwise pass a float or a CPU tensor")
    if lr_value is not None and not lr_value >= 0:
        raise ValueError(f"Invalid learning rate: lr{where}={lr_value}; it must be >= 0")
    eps = _as_float(f"eps{where}", group["eps"])
    if eps is not None and not eps >= 0:
        raise ValueError(f"Invalid epsilon value: eps{where}={eps}; it must be >= 0 (1e-8 is the usual value)")
    wd = _as_float(f"weight_decay{where}", group["weight_decay"])
    if wd is not None and not wd >= 0:
        raise ValueError(f"Invalid weight_decay value: weight_decay{where}={wd}; it must be >= 0")
    betas = group["betas"]
    if not isinstance(betas, (tuple, list)):
        raise TypeError(f"betas{where} must be a pair (beta1, beta2), got {type(betas).__name__} {betas!r}")
    if len(betas) != 2:
        raise ValueError(f"betas{where} must be a pair (beta1, beta2), got {betas!r}")
    for index, beta in enumerate(betas):
        value = _as_float(f"betas[{index}]{where}", beta)
        if value is not None and not 0.0 <= value < 1.0:
            raise ValueError(f"Invalid beta parameter at index {index}: betas[{index}]{where}={value}; "
                             "each beta must be in [0, 1) (defaults: 0.9, 0.999)")
    if group.get("differentiable", False):
        raise ValueError(f"differentiable=True{where} is not supported by fusedadam: its kernels update tensors in "
                         "place outside autograd; use torch.optim.Adam(differentiable=True) to differentiate "
                         "through the step")
    backend = group.get("backend", "auto")
    if backend not in BACKEND_NAMES:
        raise ValueError(f"Unknown backend{where}={backend!r}; choose one of {', '.join(map(repr, BACKEND_NAMES))}")
    for flag in ("amsgrad", "maximize", "capturable", "decoupled_weight_decay"):
        if not isinstance(group.get(flag, False), bool):
            raise ValueError(f"{flag}{where} must be True or False, got {group[flag]!r}")
    for flag in ("foreach", "fused"):
        if group.get(flag) not in (None, True, False):
            raise ValueError(f"{flag}{where} must be None, True or False, got {group[flag]!r}")
    check_precision_options(group, where)


def check_param(p, where: str) -> None:
    if not isinstance(p, torch.Tensor):
        raise TypeError(f"{where} is a {type(p).__name__}, not a torch.Tensor; pass model.parameters()")
    if not (p.is_floating_point() or p.is_complex()):
        raise ValueError(f"{where} has dtype {p.dtype}: Adam only optimizes floating-point (or complex) tensors; "
                         "leave integer tensors out of the optimizer")


def check_precision_applies(group: dict, p: torch.Tensor, precision: Precision, backend: str, refusal,
                            where: str) -> None:
    """Raises ValueError when the group's precision options (`precision` for `p`) cannot apply to `p`, stepped by
    `backend`; `refusal()` says why no native backend steps it."""
    reason = precision_unsupported_reason(group, p)
    if reason is not None:
        raise ValueError(f"{where}: {reason}")
    if precision.quantized:
        if backend not in EIGHT_BIT_BACKENDS:
            why = f"backend={backend!r} was asked for" if group.get("backend") == backend else refusal()
            raise ValueError(f"{where}: state_dtype='8bit' runs in the {', '.join(EIGHT_BIT_BACKENDS)} backends' "
                             f"kernels, and the {backend} backend steps this parameter ({why}); use one of those, or "
                             "state_dtype=torch.bfloat16 for it (a param group of its own)")
        sharding_problem = sharding_unsupported_reason(p)
        if sharding_problem is not None:
            raise ValueError(f"{where}: state_dtype='8bit' cannot apply to this DTensor parameter: {sharding_problem}; "
                             "use state_dtype=torch.bfloat16 for it (a param group of its own)")
    if backend == "torch" and needs_native_backend(group, p):
        options = ", ".join(f"{k}={group[k]!r}" for k, v in PRECISION_DEFAULTS.items() if group.get(k, v) != v)
        why = "backend='torch' was asked for" if group.get("backend") == "torch" else refusal()
        raise ValueError(f"{where}: {options} runs in the native kernels only (cpu, cuda, triton), and none steps this "
                         f"parameter ({why}); drop the option for it (a param group of its own) or use "
                         "backend='auto'")


def check_grad(p: torch.Tensor, grad: torch.Tensor, where: str) -> None:
    if grad.is_sparse or grad.layout != torch.strided:
        raise RuntimeError(f"FusedAdam does not support sparse gradients ({where} has a {grad.layout} gradient); "
                           "use torch.optim.SparseAdam for it, e.g. nn.Embedding(sparse=True) parameters")
    if grad.shape != p.shape or grad.dtype != p.dtype or grad.device != p.device:
        raise RuntimeError(f"{where}: its gradient ({grad.dtype}, {tuple(grad.shape)}, {grad.device}) does not match "
                           f"the parameter ({p.dtype}, {tuple(p.shape)}, {p.device}); gradients must have the "
                           "parameter's dtype, shape and device")


def check_state(p: torch.Tensor, state: dict | None, group: dict, where: str) -> None:
    """Refuses, as torch.optim.Adam would at its step, state that cannot go with parameter `p`: a state with torch's
    moments missing (KeyError), a moment of another shape or device (RuntimeError), a non-tensor moment (TypeError).
    A moment of another dtype is converted at the step, as option changes convert them."""
    if not state:
        return  # created at the step
    moments = ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group.get("amsgrad") else ())
    for key in moments:
        if key not in state:
            raise KeyError(f"{where}: its optimizer state has no {key!r} (torch.optim.Adam fails the same way: it "
                           "creates state only for a parameter with none; set opt.state[p] = {} to start it afresh)")
    for key in (*moments, "master_param", "kahan_compensation"):
        value = state.get(key)
        if value is None:
            continue
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{where}: its state[{key!r}] is a {type(value).__name__}, not a tensor")
        if value.shape != p.shape or value.device != p.device:
            raise RuntimeError(f"{where}: its state[{key!r}] is {tuple(value.shape)} on {value.device}, the parameter "
                               f"{tuple(p.shape)} on {p.device}; the state must match its parameter (after resizing a "
                               "parameter, give it new state: opt.state[p] = {})")
    for key in moments:
        if state[key].dtype == torch.uint8:
            _check_absmax(p, state, key, where)
    step = state.get("step")
    if step is not None and not isinstance(step, (torch.Tensor, int, float)):
        raise TypeError(f"{where}: its state['step'] is a {type(step).__name__}, not a tensor or a number")


def _check_absmax(p: torch.Tensor, state: dict, key: str, where: str) -> None:
    """8-bit codes mean nothing without their block absmaxes: one real number per block of 256, on p's device."""
    absmax_key = ABSMAX_KEYS[key]
    absmax = state.get(absmax_key)
    if not isinstance(absmax, torch.Tensor):
        raise KeyError(f"{where}: its state[{key!r}] holds 8-bit codes (uint8) but state[{absmax_key!r}] is "
                       f"{'missing' if absmax is None else type(absmax).__name__}; the codes cannot be read without it "
                       "(set opt.state[p] = {} to start the state afresh)")
    blocks = absmax_shape(p)
    if absmax.shape != blocks or absmax.device != p.device or not absmax.is_floating_point():
        raise RuntimeError(f"{where}: its state[{absmax_key!r}] is {absmax.dtype} {tuple(absmax.shape)} on "
                           f"{absmax.device}; 8-bit {key} of this parameter needs a floating-point tensor of shape "
                           f"{blocks} on {p.device} (one absmax per block of 256 elements"
                           f"{' of each local shard, a row per shard' if len(blocks) == 2 else ''})")
    placement_problem = absmax_placement_mismatch(p, absmax)
    if placement_problem is not None:
        raise RuntimeError(f"{where}: its state[{absmax_key!r}] {placement_problem} (set opt.state[p] = {{}} to start "
                           "the state afresh)")
