"""The per-element Adam / AdamW / AMSGrad update in Triton: csrc/adam_math.h, operation for operation.

Triton cannot include the C++ header, so this is the one other spelling of the math; the tests hold both to
the same float64 reference. Divisions and square roots are the IEEE-rounded ones (div_rn, sqrt_rn), not
Triton's default approximations, so results match the CUDA and CPU kernels to rounding."""
import triton
import triton.language as tl

# csrc/adam_math.h WeightDecay.
WEIGHT_DECAY_NONE = tl.constexpr(0)
WEIGHT_DECAY_L2 = tl.constexpr(1)
WEIGHT_DECAY_DECOUPLED = tl.constexpr(2)


@triton.jit
def nan_propagating_max(a, b):
    """torch.maximum: NaN wins (tl.maximum would drop it)."""
    return tl.where((b > a) | (b != b), b, a)


@triton.jit
def adam_update(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq,
                beta1, beta2, one_minus_beta1, one_minus_beta2, eps, weight_decay, decay_factor, step_size,
                bias_correction2_sqrt,
                WEIGHT_DECAY: tl.constexpr, AMSGRAD: tl.constexpr, MAXIMIZE: tl.constexpr):
    """One element of Algorithm 1 (Kingma & Ba 2015) with AdamW's decoupled decay and AMSGrad, in fp32.
    Returns (param, exp_avg, exp_avg_sq, max_exp_avg_sq); max_exp_avg_sq is passed through unless AMSGRAD."""
    if MAXIMIZE:
        grad = -grad
    if WEIGHT_DECAY == WEIGHT_DECAY_L2:
        grad = grad + weight_decay * param
    if WEIGHT_DECAY == WEIGHT_DECAY_DECOUPLED:
        param = param * decay_factor
    exp_avg = beta1 * exp_avg + one_minus_beta1 * grad
    exp_avg_sq = beta2 * exp_avg_sq + one_minus_beta2 * grad * grad
    second_moment = exp_avg_sq
    if AMSGRAD:
        # The maximum of the *biased* estimate, as torch takes it.
        max_exp_avg_sq = nan_propagating_max(max_exp_avg_sq, exp_avg_sq)
        second_moment = max_exp_avg_sq
    # eps after the bias-corrected square root (torch's placement).
    denom = tl.div_rn(tl.sqrt_rn(second_moment), bias_correction2_sqrt) + eps
    param = param - step_size * tl.div_rn(exp_avg, denom)
    return param, exp_avg, exp_avg_sq, max_exp_avg_sq
