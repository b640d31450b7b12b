// The CPU Adam kernel, compiled once per ISA variant (cpu_isa.h). Each adam_cpu_isa_*.cpp defines
//   FUSEDADAM_CPU_ISA     the variant's namespace: no function of one variant may stand in for another's
//   FUSEDADAM_CPU_TARGET  its `#pragma GCC target` (empty for the build's own target)
//   FUSEDADAM_CPU_F16C, FUSEDADAM_CPU_AVX512, FUSEDADAM_CPU_AVX512_BF16  1 where that target has them (default 0)
//   FUSEDADAM_CPU_FMA     1 where that target has FMA instructions (default: whether the build's own target has them)
// and includes this file. Every header is included above the pragma, so only what this file defines is compiled for
// the variant: an inline function of the standard library or of a shared header compiled here with AVX-512 could
// otherwise be the one copy the linker keeps for every caller, on every CPU.
#pragma once

#ifndef FUSEDADAM_CPU_F16C
#define FUSEDADAM_CPU_F16C 0
#endif
#ifndef FUSEDADAM_CPU_AVX512
#define FUSEDADAM_CPU_AVX512 0
#endif
#ifndef FUSEDADAM_CPU_AVX512_BF16
#define FUSEDADAM_CPU_AVX512_BF16 0
#endif
#ifndef FUSEDADAM_CPU_FMA
#if defined(__FP_FAST_FMAF) && defined(__FP_FAST_FMA)
#define FUSEDADAM_CPU_FMA 1
#else
#define FUSEDADAM_CPU_FMA 0
#endif
#endif

#include <algorithm>
#include <cstdint>
#include <type_traits>
#if FUSEDADAM_CPU_X86_VARIANTS
#include <immintrin.h>
#endif

#include "../adam_modes.h"
#include "../moment_quantization.h"
#include "cpu_isa.h"
#include "multi_tensor_cpu.h"
#include "storage_cast.h"

FUSEDADAM_CPU_TARGET

namespace fusedadam::cpu::FUSEDADAM_CPU_ISA {

#include "group_cast.h"

// Adam's math on n elements, then the value the parameter keeps (param_update.h). Each array is either the tensor's
// own storage, loaded and rounded element by element inside the loop, or a group of 32 already widened to Opmath (where
// load() and store() are plain copies). Element i is element `first_index + i` of its tensor (stochastic rounding).
template <ParamUpdate kUpdate, WeightDecay kWeightDecay, bool kAmsgrad, bool kMaximize, typename Opmath,
          typename Param, typename State, typename Compensation>
inline __attribute__((always_inline)) void update_elements(Param* __restrict param, const Param* __restrict grad,
                                                            State* __restrict exp_avg, State* __restrict exp_avg_sq,
                                                            State* __restrict max_exp_avg_sq, float* __restrict master,
                                                            Compensation* __restrict compensation, int64_t n,
                                                            const AdamCoefficients<Opmath>& c, uint32_t rounding_key,
                                                            int64_t first_index) {
  constexpr bool kMaster = kUpdate == ParamUpdate::kMasterWeights;
  // The arrays are distinct tensors (or, at worst, the same one at the same index), so no iteration depends on
  // another. Without this GCC versions the loop with run-time alias checks and, with AMSGrad's fifth array, gives
  // up vectorizing (4.7x slower).
#pragma GCC ivdep
  for (int64_t i = 0; i < n; ++i) {
    const Opmath before = kMaster ? master[i] : load(param[i]);
    Opmath after = before;
    Opmath m = load(exp_avg[i]);
    Opmath v = load(exp_avg_sq[i]);
    Opmath vmax = kAmsgrad ? load(max_exp_avg_sq[i]) : Opmath(0);
    adam_update<kWeightDecay, kAmsgrad, kMaximize, FUSEDADAM_CPU_FMA>(after, load(grad[i]), m, v, vmax, c);
    Opmath carried = kUpdate == ParamUpdate::kKahanSummation ? load(compensation[i]) : Opmath(0);
    const uint32_t random =
        kUpdate == ParamUpdate::kStochasticRounding ? rounding_bits(rounding_key, first_index + i) : 0u;
    store(param[i], param_to_store<kUpdate>(before, after, carried, random));
    if constexpr (kMaster) master[i] = after;
    if constexpr (kUpdate == ParamUpdate::kKahanSummation) store(compensation[i], carried);
    store(exp_avg[i], m);
    store(exp_avg_sq[i], v);
    if (kAmsgrad) store(max_exp_avg_sq[i], vmax);
  }
}

// Runs the last n % 32 elements of a grouped span: a scalar loop, since vectorizing fewer than 32 elements through
// the portable conversions gains nothing and took a third of the build's compile time.
template <typename Fn>
__attribute__((noinline, optimize("no-tree-vectorize"))) void fewer_than_a_group(const Fn& fn) {
  fn();
}

// Adam on n consecutive elements, element 0 being element `first_index` of its tensor. Each moment pointer is the
// tensor's own storage or fp32 scratch (8-bit moments, decoded). With any 16-bit array, whole groups of 32 go through
// fp32 scratch with the variant's own conversions (group_cast.h), and the last n % 32 elements through the loop that
// converts element by element; fp32 and fp64 storage is that loop alone.
template <ParamUpdate kUpdate, WeightDecay kWeightDecay, bool kAmsgrad, bool kMaximize, typename Param, typename State>
inline __attribute__((always_inline)) void update_span(Param* const param, const Param* const grad,
                                                       State* const exp_avg, State* const exp_avg_sq,
                                                       State* const max_exp_avg_sq, float* const master,
                                                       BFloat16* const compensation, const int64_t n,
                                                       const AdamCoefficients<opmath_t<Param>>& c,
                                                       uint32_t rounding_key, int64_t first_index) {
  using Opmath = opmath_t<Param>;
  constexpr bool kMaster = kUpdate == ParamUpdate::kMasterWeights;
  constexpr bool kKahan = kUpdate == ParamUpdate::kKahanSummation;
  constexpr bool kGrouped =
      std::is_same_v<Opmath, float> && !(std::is_same_v<Param, float> && std::is_same_v<State, float>);
  int64_t grouped = 0;
  if constexpr (kGrouped) {
    grouped = n / kGroup * kGroup;
    for (int64_t at = 0; at < grouped; at += kGroup) {
      alignas(64) float p[kGroup], g[kGroup], m[kGroup], v[kGroup], vmax[kGroup], carried[kGroup];
      // With master weights the fp32 copy is read and updated in place; the parameter is only written.
      float* const group_param = kMaster ? p : group_of(param + at, p);
      float* const group_vmax = kAmsgrad ? group_of(max_exp_avg_sq + at, vmax) : nullptr;
      float* const group_carried = kKahan ? group_of(compensation + at, carried) : nullptr;
      float* const group_m = group_of(exp_avg + at, m);
      float* const group_v = group_of(exp_avg_sq + at, v);
      update_elements<kUpdate, kWeightDecay, kAmsgrad, kMaximize, float>(
          group_param, group_of(const_cast<Param*>(grad) + at, g), group_m, group_v, group_vmax,
          kMaster ? master + at : nullptr, group_carried, kGroup, c, rounding_key, first_index + at);
      store_group(group_param, param + at);
      store_group(group_m, exp_avg + at);
      store_group(group_v, exp_avg_sq + at);
      if constexpr (kAmsgrad) store_group(group_vmax, max_exp_avg_sq + at);
      if constexpr (kKahan) store_group(group_carried, compensation + at);
    }
  }
  auto rest = [&] {
    update_elements<kUpdate, kWeightDecay, kAmsgrad, kMaximize, Opmath>(
        param + grouped, grad + grouped, exp_avg + grouped, exp_avg_sq + grouped,
        kAmsgrad ? max_exp_avg_sq + grouped : nullptr, kMaster ? master + grouped : nullptr,
        kKahan ? compensation + grouped : nullptr, n - grouped, c, rounding_key, first_index + grouped);
  };
  if constexpr (kGrouped) {
    fewer_than_a_group(rest);
  } else {
    rest();
  }
}

template <typename Precision>
using ParamOf = typename StorageOf<Precision::param>::type;
template <typename Precision>
using StepCoefficients = AdamCoefficients<opmath_t<ParamOf<Precision>>>;

// One span [begin, end) of one tensor, its moments in their own storage.
template <typename Precision, WeightDecay kWeightDecay, bool kAmsgrad, bool kMaximize>
void adam_span(const TensorSlot& t, int64_t begin, int64_t end, const StepCoefficients<Precision>& c,
               uint32_t rounding_key) {
  using Param = ParamOf<Precision>;
  using State = typename StorageOf<Precision::state>::type;
  constexpr ParamUpdate kUpdate = Precision::update;
  update_span<kUpdate, kWeightDecay, kAmsgrad, kMaximize>(
      static_cast<Param*>(t.param) + begin, static_cast<const Param*>(t.grad) + begin,
      static_cast<State*>(t.exp_avg) + begin, static_cast<State*>(t.exp_avg_sq) + begin,
      kAmsgrad ? static_cast<State*>(t.max_exp_avg_sq) + begin : nullptr,
      kUpdate == ParamUpdate::kMasterWeights ? t.master + begin : nullptr,
      kUpdate == ParamUpdate::kKahanSummation ? static_cast<BFloat16*>(t.compensation) + begin : nullptr, end - begin,
      c, rounding_key, begin);
}

// One span of one tensor with 8-bit moments; `begin` is a block boundary (parallel_for_each_span's granule). Block
// by block: decode the moments into fp32 scratch, step, encode them again. The parameter is updated with this step's
// fp32 moments; only what is kept between steps is rounded to the map.
template <typename Precision, WeightDecay kWeightDecay, bool kAmsgrad, bool kMaximize>
void adam_span_8bit(const TensorSlot& t, int64_t begin, int64_t end, const StepCoefficients<Precision>& c,
                    uint32_t rounding_key) {
  using quantization::block_absmax, quantization::decode_block, quantization::encode_block, quantization::kBlock,
      quantization::SignedMap, quantization::UnsignedMap;
  using Param = ParamOf<Precision>;
  constexpr ParamUpdate kUpdate = Precision::update;
  Param* const param = static_cast<Param*>(t.param);
  const Param* const grad = static_cast<const Param*>(t.grad);
  uint8_t* const exp_avg = static_cast<uint8_t*>(t.exp_avg);
  uint8_t* const exp_avg_sq = static_cast<uint8_t*>(t.exp_avg_sq);
  uint8_t* const max_exp_avg_sq = static_cast<uint8_t*>(t.max_exp_avg_sq);
  for (int64_t at = begin; at < end; at += kBlock) {
    const int64_t n = std::min(kBlock, end - at);
    const int64_t block = at / kBlock;
    alignas(64) float m[kBlock], v[kBlock], vmax[kBlock];
    decode_block<SignedMap>(exp_avg + at, t.exp_avg_absmax[block], n, m);
    decode_block<UnsignedMap>(exp_avg_sq + at, t.exp_avg_sq_absmax[block], n, v);
    if constexpr (kAmsgrad) decode_block<UnsignedMap>(max_exp_avg_sq + at, t.max_exp_avg_sq_absmax[block], n, vmax);
    update_span<kUpdate, kWeightDecay, kAmsgrad, kMaximize>(
        param + at, grad + at, m, v, kAmsgrad ? vmax : nullptr,
        kUpdate == ParamUpdate::kMasterWeights ? t.master + at : nullptr,
        kUpdate == ParamUpdate::kKahanSummation ? static_cast<BFloat16*>(t.compensation) + at : nullptr, n, c,
        rounding_key, at);
    t.exp_avg_absmax[block] = block_absmax(m, n);
    t.exp_avg_sq_absmax[block] = block_absmax(v, n);
    encode_block<SignedMap>(m, n, t.exp_avg_absmax[block], exp_avg + at);
    encode_block<UnsignedMap>(v, n, t.exp_avg_sq_absmax[block], exp_avg_sq + at);
    if constexpr (kAmsgrad) {
      t.max_exp_avg_sq_absmax[block] = block_absmax(vmax, n);
      encode_block<UnsignedMap>(vmax, n, t.max_exp_avg_sq_absmax[block], max_exp_avg_sq + at);
    }
  }
}

template <typename Precision, WeightDecay kWeightDecay, bool kAmsgrad, bool kMaximize>
void run(const TensorTable& table, const StepConstants& constants, int max_threads) {
  using Opmath = opmath_t<ParamOf<Precision>>;
  const AdamCoefficients<Opmath>* coefficients = constants.coefficients<Opmath>();
  const uint32_t* keys = constants.rounding_keys.data();
  if constexpr (Precision::state == DType::kMoment8Bit) {
    parallel_for_each_span(table, max_threads, quantization::kBlock, [&](int64_t i, int64_t begin, int64_t end) {
      adam_span_8bit<Precision, kWeightDecay, kAmsgrad, kMaximize>(table.tensors[i], begin, end, coefficients[i],
                                                                   keys[i]);
    });
  } else {
    parallel_for_each_span(table, max_threads, 1, [&](int64_t i, int64_t begin, int64_t end) {
      adam_span<Precision, kWeightDecay, kAmsgrad, kMaximize>(table.tensors[i], begin, end, coefficients[i], keys[i]);
    });
  }
}

void adam_step(const TensorTable& table, const StepConstants& constants, const AdamHyperparameters& hp,
               int max_threads) {
  dispatch_precision(table.param_dtype, table.state_dtype, table.param_update, [&](auto precision) {
    dispatch_adam_mode(hp.weight_decay_mode, hp.amsgrad, hp.maximize, [&](auto weight_decay, auto amsgrad, auto maximize) {
      run<decltype(precision), decltype(weight_decay)::value, decltype(amsgrad)::value, decltype(maximize)::value>(
          table, constants, max_threads);
    });
  });
}

}  // namespace fusedadam::cpu::FUSEDADAM_CPU_ISA
