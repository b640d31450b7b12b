// The Adam update over fp32 arrays, and the one place that turns a step's runtime mode into template
// arguments. Shared by the generic CPU kernel and the F16C fp16 path.
#pragma once

#include <cstdint>
#include <type_traits>

#include "../tensor_table.h"

namespace fusedadam::cpu {

template <WeightDecay kWeightDecay, bool kAmsgrad, bool kMaximize>
inline __attribute__((always_inline)) void update_float_span(float* __restrict p, const float* __restrict g,
                                                              float* __restrict m, float* __restrict v,
                                                              float* __restrict vmax, int64_t n,
                                                              const AdamCoefficients<float>& c) {
#pragma GCC ivdep
  for (int64_t i = 0; i < n; ++i) {
    float unused = 0.0f;
    adam_update<kWeightDecay, kAmsgrad, kMaximize>(p[i], g[i], m[i], v[i], kAmsgrad ? vmax[i] : unused, c);
  }
}

// Calls fn(weight_decay, amsgrad, maximize) with each as a std::integral_constant: modes are chosen once
// per step, never per element.
template <typename Fn>
void dispatch_adam_mode(const AdamHyperparameters& hp, Fn&& fn) {
  auto with_flags = [&](auto weight_decay) {
    using True = std::true_type;
    using False = std::false_type;
    if (hp.amsgrad) {
      hp.maximize ? fn(weight_decay, True{}, True{}) : fn(weight_decay, True{}, False{});
    } else {
      hp.maximize ? fn(weight_decay, False{}, True{}) : fn(weight_decay, False{}, False{});
    }
  };
  switch (hp.weight_decay_mode) {
    case WeightDecay::kNone: return with_flags(std::integral_constant<WeightDecay, WeightDecay::kNone>{});
    case WeightDecay::kL2: return with_flags(std::integral_constant<WeightDecay, WeightDecay::kL2>{});
    case WeightDecay::kDecoupled:
      return with_flags(std::integral_constant<WeightDecay, WeightDecay::kDecoupled>{});
  }
}

}  // namespace fusedadam::cpu
