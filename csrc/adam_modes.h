// The one place that turns a step's runtime mode into template arguments, for every kernel (CPU and CUDA):
// modes are chosen once per step, never per element.
#pragma once

#include <stdexcept>
#include <type_traits>

#include "adam_math.h"

namespace fusedadam {

// Calls fn(weight_decay, amsgrad, maximize), each a std::integral_constant.
template <typename Fn>
void dispatch_adam_mode(WeightDecay weight_decay_mode, bool amsgrad, bool maximize, Fn&& fn) {
  auto with_flags = [&](auto weight_decay) {
    using True = std::true_type;
    using False = std::false_type;
    if (amsgrad) {
      maximize ? fn(weight_decay, True{}, True{}) : fn(weight_decay, True{}, False{});
    } else {
      maximize ? fn(weight_decay, False{}, True{}) : fn(weight_decay, False{}, False{});
    }
  };
  switch (weight_decay_mode) {
    case WeightDecay::kNone: return with_flags(std::integral_constant<WeightDecay, WeightDecay::kNone>{});
    case WeightDecay::kL2: return with_flags(std::integral_constant<WeightDecay, WeightDecay::kL2>{});
    case WeightDecay::kDecoupled:
      return with_flags(std::integral_constant<WeightDecay, WeightDecay::kDecoupled>{});
  }
  throw std::invalid_argument("unknown weight_decay_mode");
}

}  // namespace fusedadam
