// The one place that turns a step's runtime modes into template arguments, for every kernel (CPU and CUDA):
// modes are chosen once per step, never per element.
#pragma once

#include <stdexcept>
#include <type_traits>

#include "adam_math.h"
#include "param_update.h"
#include "tensor_table.h"

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

// The storage combinations a table may have, as (parameter dtype, state dtype, parameter update). Only these
// are instantiated; fusedadam/precision.py refuses anything else with a clear message first.
template <DType kParam, DType kState, ParamUpdate kUpdate>
struct Precision {
  static constexpr DType param = kParam;
  static constexpr DType state = kState;
  static constexpr ParamUpdate update = kUpdate;
};

// Calls fn(Precision<...>{}) for the table's combination; std::invalid_argument for any other.
template <typename Fn>
void dispatch_precision(DType param, DType state, ParamUpdate update, Fn&& fn) {
  constexpr DType F32 = DType::kFloat32, F64 = DType::kFloat64, F16 = DType::kFloat16, B16 = DType::kBFloat16,
                  U8 = DType::kMoment8Bit;
  constexpr ParamUpdate Nearest = ParamUpdate::kRoundToNearest, Master = ParamUpdate::kMasterWeights,
                        Stochastic = ParamUpdate::kStochasticRounding, Kahan = ParamUpdate::kKahanSummation;
  bool matched = false;
  auto try_precision = [&](auto precision) {
    using P = decltype(precision);
    if (!matched && P::param == param && P::state == state && P::update == update) {
      matched = true;
      fn(precision);
    }
  };
  try_precision(Precision<F32, F32, Nearest>{});
  try_precision(Precision<F64, F64, Nearest>{});
  try_precision(Precision<F16, F16, Nearest>{});
  try_precision(Precision<B16, B16, Nearest>{});
  // Optimizer states in another dtype than the parameter.
  try_precision(Precision<F32, B16, Nearest>{});
  try_precision(Precision<F16, F32, Nearest>{});
  try_precision(Precision<F16, B16, Nearest>{});
  try_precision(Precision<B16, F32, Nearest>{});
  // 16-bit parameters with an fp32 master copy.
  try_precision(Precision<F16, F32, Master>{});
  try_precision(Precision<F16, B16, Master>{});
  try_precision(Precision<B16, F32, Master>{});
  try_precision(Precision<B16, B16, Master>{});
  // bf16 parameters without a master copy, rounded stochastically or compensated.
  try_precision(Precision<B16, B16, Stochastic>{});
  try_precision(Precision<B16, F32, Stochastic>{});
  try_precision(Precision<B16, B16, Kahan>{});
  try_precision(Precision<B16, F32, Kahan>{});
  // 8-bit moments (moment_quantization.h).
  try_precision(Precision<F32, U8, Nearest>{});
  try_precision(Precision<F16, U8, Nearest>{});
  try_precision(Precision<B16, U8, Nearest>{});
  try_precision(Precision<F16, U8, Master>{});
  try_precision(Precision<B16, U8, Master>{});
  try_precision(Precision<B16, U8, Stochastic>{});
  try_precision(Precision<B16, U8, Kahan>{});
  if (!matched) {
    throw std::invalid_argument("unsupported combination of parameter dtype, state dtype and parameter update");
  }
}

}  // namespace fusedadam
