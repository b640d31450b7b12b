// The CPU kernel of one storage combination (adam_modes.h Precision): storage-dtype loads and stores around
// the shared per-element math, vectorized by the compiler in one clone per ISA, run over all tensors of a
// table in one parallel region. Included by the translation units that instantiate it (adam_cpu.cpp for
// the round-to-nearest combinations, adam_cpu_param_updates.cpp for the others), so both compile at once.
#pragma once

#include <cstdint>
#include <vector>

#include "../adam_modes.h"
#include "multi_tensor_cpu.h"
#include "simd_targets.h"
#include "storage_cast.h"

namespace fusedadam::cpu {

template <DType kDType> struct StorageOf;
template <> struct StorageOf<DType::kFloat32> { using type = float; };
template <> struct StorageOf<DType::kFloat64> { using type = double; };
template <> struct StorageOf<DType::kFloat16> { using type = Float16; };
template <> struct StorageOf<DType::kBFloat16> { using type = BFloat16; };

// One span of one tensor: every array is loaded in its storage dtype, updated in the parameter's opmath by
// the shared math, and written back (the parameter through param_to_store, param_update.h).
template <typename Precision, WeightDecay kWeightDecay, bool kAmsgrad, bool kMaximize>
FUSEDADAM_SIMD_CLONES void adam_span(const TensorSlot& t, int64_t begin, int64_t end,
                                     const AdamCoefficients<opmath_t<typename StorageOf<Precision::param>::type>>& c,
                                     uint32_t rounding_key) {
  using Param = typename StorageOf<Precision::param>::type;
  using State = typename StorageOf<Precision::state>::type;
  using Opmath = opmath_t<Param>;
  constexpr ParamUpdate kUpdate = Precision::update;
  constexpr bool kMaster = kUpdate == ParamUpdate::kMasterWeights;
  constexpr bool kKahan = kUpdate == ParamUpdate::kKahanSummation;
  Param* __restrict param = static_cast<Param*>(t.param) + begin;
  const Param* __restrict grad = static_cast<const Param*>(t.grad) + begin;
  State* __restrict exp_avg = static_cast<State*>(t.exp_avg) + begin;
  State* __restrict exp_avg_sq = static_cast<State*>(t.exp_avg_sq) + begin;
  State* __restrict max_exp_avg_sq = kAmsgrad ? static_cast<State*>(t.max_exp_avg_sq) + begin : nullptr;
  float* __restrict master = kMaster ? t.master + begin : nullptr;
  BFloat16* __restrict compensation = kKahan ? static_cast<BFloat16*>(t.compensation) + begin : nullptr;
  const int64_t n = end - begin;
  // The arrays are distinct tensors (or, at worst, the same one at the same index), so no iteration
  // depends on another. GCC honours __restrict only on parameters; without this it versions the loop
  // with run-time alias checks and, with AMSGrad's fifth array, gives up vectorizing (4.7x slower).
#pragma GCC ivdep
  for (int64_t i = 0; i < n; ++i) {
    const Opmath before = kMaster ? master[i] : load(param[i]);
    Opmath p = before;
    Opmath m = load(exp_avg[i]);
    Opmath v = load(exp_avg_sq[i]);
    Opmath vmax = kAmsgrad ? load(max_exp_avg_sq[i]) : Opmath(0);
    adam_update<kWeightDecay, kAmsgrad, kMaximize>(p, load(grad[i]), m, v, vmax, c);
    Opmath carried = kKahan ? load(compensation[i]) : Opmath(0);
    const uint32_t random = kUpdate == ParamUpdate::kStochasticRounding ? rounding_bits(rounding_key, begin + i) : 0u;
    store(param[i], param_to_store<kUpdate>(before, p, carried, random));
    if constexpr (kMaster) master[i] = p;
    if constexpr (kKahan) store(compensation[i], carried);
    store(exp_avg[i], m);
    store(exp_avg_sq[i], v);
    if (kAmsgrad) store(max_exp_avg_sq[i], vmax);
  }
}

// Increments every step counter (in float32, as torch does) and computes each tensor's constants.
// Tensors of one group nearly always share a step, so pow() runs once, not once per tensor.
template <typename Opmath>
std::vector<AdamCoefficients<Opmath>> advance_steps(const TensorTable& table, const AdamHyperparameters& hp) {
  std::vector<AdamCoefficients<Opmath>> coefficients(table.tensors.size());
  double previous_step = -1.0;
  AdamCoefficients<Opmath> previous{};
  for (size_t i = 0; i < table.tensors.size(); ++i) {
    const double step = table.advance_step(i);
    if (step != previous_step) {
      previous = make_adam_coefficients<Opmath>(hp.lr, hp.beta1, hp.beta2, hp.eps, hp.weight_decay, step);
      previous_step = step;
    }
    coefficients[i] = previous;
  }
  return coefficients;
}

// Each tensor's stream of rounding bits for this step (stochastic rounding only).
inline std::vector<uint32_t> rounding_keys(const TensorTable& table, const AdamHyperparameters& hp) {
  std::vector<uint32_t> keys(table.tensors.size(), 0u);
  if (table.param_update != ParamUpdate::kStochasticRounding) return keys;
  for (size_t i = 0; i < keys.size(); ++i) {
    const auto& t = table.tensors[i];
    keys[i] = rounding_key(hp.seed, t.salt, static_cast<uint32_t>(table.step_of(i)));  // the step already advanced
  }
  return keys;
}

template <typename Precision, WeightDecay kWeightDecay, bool kAmsgrad, bool kMaximize, typename Opmath>
void run(const TensorTable& table, const std::vector<AdamCoefficients<Opmath>>& coefficients,
         const std::vector<uint32_t>& keys, int max_threads) {
  parallel_for_each_span(table, max_threads, [&](int64_t i, int64_t begin, int64_t end) {
    adam_span<Precision, kWeightDecay, kAmsgrad, kMaximize>(table.tensors[i], begin, end, coefficients[i], keys[i]);
  });
}

template <typename Precision>
void step_precision(const TensorTable& table, const AdamHyperparameters& hp, int max_threads) {
  using Opmath = opmath_t<typename StorageOf<Precision::param>::type>;
  const auto coefficients = advance_steps<Opmath>(table, hp);
  const auto keys = rounding_keys(table, hp);
  dispatch_adam_mode(hp.weight_decay_mode, hp.amsgrad, hp.maximize, [&](auto weight_decay, auto amsgrad, auto maximize) {
    run<Precision, decltype(weight_decay)::value, decltype(amsgrad)::value, decltype(maximize)::value>(
        table, coefficients, keys, max_threads);
  });
}

}  // namespace fusedadam::cpu
