// The Adam / AdamW / AMSGrad update of ONE element, written once for every backend.
//
// This header is the only place the per-element math lives: the CPU kernel (csrc/cpu) and the CUDA
// kernel (csrc/cuda) both inline it. It is the exact algorithm of DESIGN.md section 2, in the
// operation order torch.optim.Adam uses, so results agree with torch to within rounding.
//
// All arithmetic happens in `Opmath` (float for fp32/fp16/bf16 storage, double for fp64 storage);
// loading and storing the storage dtype is the caller's business.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define FUSEDADAM_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define FUSEDADAM_HOST_DEVICE inline __attribute__((always_inline))
#endif

namespace fusedadam {

enum class WeightDecay : int {
  kNone = 0,       // weight_decay == 0: no term at all (0 * inf would otherwise make a NaN)
  kL2 = 1,         // Adam: g += wd * p (coupled, goes through the moments)
  kDecoupled = 2,  // AdamW: p *= 1 - lr * wd (before the moment update)
};

// Per-tensor constants of one step. Computed once per tensor on the host in double precision (as
// torch does with Python floats), then rounded to Opmath: never per element.
template <typename Opmath>
struct AdamCoefficients {
  Opmath beta1;
  Opmath beta2;
  Opmath one_minus_beta1;
  Opmath one_minus_beta2;
  Opmath eps;
  Opmath weight_decay;       // used by WeightDecay::kL2
  Opmath decay_factor;       // 1 - lr * wd, used by WeightDecay::kDecoupled
  Opmath step_size;          // lr / (1 - beta1^t)
  Opmath bias_correction2_sqrt;  // sqrt(1 - beta2^t)
  Opmath inverse_bias_correction2_sqrt;  // 1 / bias_correction2_sqrt, rounded in Opmath (divide_by_step_constant)
};

// x / c rounded as IEEE division rounds it, for c fixed for the whole step and inverse_c = RN(1 / c), without a
// division. x * inverse_c is within an ulp of x / c; the exact remainder x - q * c (one FMA) corrects it to the
// correctly rounded quotient (Markstein's theorem) whenever nothing under- or overflows. The one caller divides
// sqrt(v): 0, or at least 2^-74.5 (the root of fp32's smallest subnormal), at most 2^64, by a c in [2^-27, 1];
// bench/exact_division_check.cpp compares it with x / c for every such x, and tests/test_ieee_arithmetic.py the
// whole step with numpy's IEEE operations (torch's CPU sqrt is not correctly rounded). An infinite quotient is kept
// as it is: its remainder would be NaN.
// Why: a CPU's divider takes a vector of square roots or quotients every ~10-16 cycles, and Adam asked it for three
// per element; on the 2-core Xeon of bench/NOTES.md that bounded the step in cache, and the 8-bit step (which moves
// fewer bytes) in memory too; the fp32 step in memory was at the bandwidth probe either way. kFastFma is
// false where an FMA is a library call (x86-64 before Haswell), and the division is the cheaper spelling there.
template <bool kFastFma, typename Opmath>
FUSEDADAM_HOST_DEVICE Opmath divide_by_step_constant(Opmath x, Opmath c, Opmath inverse_c) {
  if constexpr (kFastFma) {
    const Opmath quotient = x * inverse_c;
    const Opmath corrected = std::fma(std::fma(-quotient, c, x), inverse_c, quotient);
    return std::isfinite(quotient) ? corrected : quotient;
  } else {
    return x / c;
  }
}

// Propagates NaN like torch.maximum (std::max would silently drop it). Bitwise `|`, not `||`: a
// short-circuit branch kept GCC from vectorizing the whole AMSGrad loop (3-4x slower, bench/NOTES.md).
template <typename Opmath>
FUSEDADAM_HOST_DEVICE Opmath nan_propagating_max(Opmath a, Opmath b) {
  const bool take_b = (b > a) | (b != b);
  return take_b ? b : a;
}

// One element of Algorithm 1 (Kingma & Ba 2015), with AdamW's decoupled decay (Loshchilov & Hutter
// 2019) and AMSGrad (Reddi et al. 2018). `max_exp_avg_sq` is only read and written when kAmsgrad.
template <WeightDecay kWeightDecay, bool kAmsgrad, bool kMaximize, bool kFastFma = true, typename Opmath>
FUSEDADAM_HOST_DEVICE void adam_update(Opmath& param, Opmath grad, Opmath& exp_avg, Opmath& exp_avg_sq,
                                       Opmath& max_exp_avg_sq, const AdamCoefficients<Opmath>& c) {
  if (kMaximize) grad = -grad;
  if (kWeightDecay == WeightDecay::kL2) grad = grad + c.weight_decay * param;
  if (kWeightDecay == WeightDecay::kDecoupled) param = param * c.decay_factor;

  exp_avg = c.beta1 * exp_avg + c.one_minus_beta1 * grad;
  exp_avg_sq = c.beta2 * exp_avg_sq + c.one_minus_beta2 * grad * grad;

  Opmath second_moment = exp_avg_sq;
  if (kAmsgrad) {
    // The maximum is taken over the *biased* estimate, as torch does.
    max_exp_avg_sq = nan_propagating_max(max_exp_avg_sq, exp_avg_sq);
    second_moment = max_exp_avg_sq;
  }
  // eps is added after the bias-corrected square root (torch's placement, not the paper's eps-hat).
  const Opmath corrected_root = divide_by_step_constant<kFastFma>(std::sqrt(second_moment), c.bias_correction2_sqrt,
                                                                  c.inverse_bias_correction2_sqrt);
  const Opmath denom = corrected_root + c.eps;
  param = param - c.step_size * (exp_avg / denom);
}

// The per-tensor constants for step number `step` (already incremented, >= 1), in double precision: on the host once
// per step count (CPU kernel), on the device once per step count a thread meets (CUDA kernel, where step lives).
// beta^step is exp2(step * log2(beta)): inline on the GPU, where pow() is a call with a stack frame, and within ulps
// of double of pow(), far below what the fp32 constants keep (beta = 0 gives exp2(-inf) = 0, as pow does).
template <typename Opmath>
FUSEDADAM_HOST_DEVICE AdamCoefficients<Opmath> make_adam_coefficients(double lr, double beta1, double beta2, double eps,
                                                                      double weight_decay, double step) {
  const double bias_correction1 = 1.0 - std::exp2(step * std::log2(beta1));
  const double bias_correction2 = 1.0 - std::exp2(step * std::log2(beta2));
  AdamCoefficients<Opmath> c;
  c.beta1 = static_cast<Opmath>(beta1);
  c.beta2 = static_cast<Opmath>(beta2);
  c.one_minus_beta1 = static_cast<Opmath>(1.0 - beta1);
  c.one_minus_beta2 = static_cast<Opmath>(1.0 - beta2);
  c.eps = static_cast<Opmath>(eps);
  c.weight_decay = static_cast<Opmath>(weight_decay);
  c.decay_factor = static_cast<Opmath>(1.0 - lr * weight_decay);
  c.step_size = static_cast<Opmath>(lr / bias_correction1);
  c.bias_correction2_sqrt = static_cast<Opmath>(std::sqrt(bias_correction2));
  c.inverse_bias_correction2_sqrt = Opmath(1) / c.bias_correction2_sqrt;
  return c;
}

}  // namespace fusedadam
