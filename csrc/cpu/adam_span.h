// The CPU Adam kernel, compiled once per ISA variant (cpu_isa.h). Each adam_cpu_isa_*.cpp defines
//   FUSEDADAM_CPU_ISA     the variant's namespace: no function of one variant may stand in for another's
//   FUSEDADAM_CPU_TARGET  its `#pragma GCC target` (empty for the build's own target)
//   FUSEDADAM_CPU_F16C, FUSEDADAM_CPU_AVX512, FUSEDADAM_CPU_AVX512_BF16  1 where that target has them (default 0)
// and includes this file. Every header is included above the pragma, so only what this file defines is compiled for
// the variant: an inline function of the standard library or of a shared header compiled here with AVX-512 could
// otherwise be the one copy the linker keeps for every caller, on every CPU.
//
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

#include <algorithm>
#include <cstdint>
#include <type_traits>
#if FUSEDADAM_CPU_X86_VARIANTS
#include <immintrin.h>
#endif

#include "../adam_modes.h"
#include "cpu_isa.h"
#include "multi_tensor_cpu.h"
#include "storage_cast.h"

FUSEDADAM_CPU_TARGET

namespace fusedadam::cpu::FUSEDADAM_CPU_ISA {

#include "block_cast.h"

// Elements per block: up to seven fp32 scratch arrays of 2 KB stay in L1 beside the streamed lines.
constexpr int64_t kBlock = 512;

// One array of a span seen in Opmath, a block at a time: the array itself where it is stored in Opmath, else the
// block widened into scratch, and narrowed back by store().
template <typename Storage, typename Opmath>
struct Staged {
  static constexpr bool kInPlace = std::is_same_v<Storage, Opmath>;
  Storage* base;
  alignas(64) Opmath scratch[kInPlace ? 1 : kBlock];

  Opmath* load(int64_t offset, int64_t n) {
    if constexpr (kInPlace) {
      return base + offset;
    } else {
      widen(base + offset, scratch, n);
      return scratch;
    }
  }
  void store(int64_t offset, int64_t n) {
    if constexpr (!kInPlace) narrow(scratch, base + offset, n);
  }
  // Asks for the lines of a later block into L2: a block's passes each stream one array for a few lines only, too
  // short for the hardware prefetchers to run ahead, and without it memory and math take turns (bench/NOTES.md).
  void prefetch(int64_t offset, int64_t n) const {
    if (base == nullptr) return;
    const char* first = reinterpret_cast<const char*>(base + offset);
    const char* last = reinterpret_cast<const char*>(base + offset + n);
    for (const char* line = first; line < last; line += 64) __builtin_prefetch(line, 0, 2);
  }
};

// Adam's math on n elements, then the value the parameter keeps (param_update.h). Each array is either the tensor's
// own storage, loaded and rounded element by element inside the loop, or a block already widened to Opmath (where
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
    adam_update<kWeightDecay, kAmsgrad, kMaximize>(after, load(grad[i]), m, v, vmax, c);
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

// One span [begin, end) of one tensor. Where the parameter and its moments are all 16-bit (and no fp32 master copy
// leads), the span is stepped in blocks that fit in L1: each array widened into fp32 scratch, updated, rounded back
// (block_cast.h), the conversions in the widest instructions the variant has. Everything else loads and rounds
// inside the one loop: with fp32 arrays streaming beside them, blocks measured slower than the plain loop
// (bench/NOTES.md).
template <typename Precision, WeightDecay kWeightDecay, bool kAmsgrad, bool kMaximize>
void adam_span(const TensorSlot& t, int64_t begin, int64_t end,
               const AdamCoefficients<opmath_t<typename StorageOf<Precision::param>::type>>& c,
               uint32_t rounding_key) {
  using Param = typename StorageOf<Precision::param>::type;
  using State = typename StorageOf<Precision::state>::type;
  using Opmath = opmath_t<Param>;
  constexpr ParamUpdate kUpdate = Precision::update;
  constexpr bool kMaster = kUpdate == ParamUpdate::kMasterWeights;
  constexpr bool kKahan = kUpdate == ParamUpdate::kKahanSummation;
  Param* const param = static_cast<Param*>(t.param) + begin;
  const Param* const grad = static_cast<const Param*>(t.grad) + begin;
  State* const exp_avg = static_cast<State*>(t.exp_avg) + begin;
  State* const exp_avg_sq = static_cast<State*>(t.exp_avg_sq) + begin;
  State* const max_exp_avg_sq = kAmsgrad ? static_cast<State*>(t.max_exp_avg_sq) + begin : nullptr;
  float* const master = kMaster ? t.master + begin : nullptr;
  BFloat16* const compensation = kKahan ? static_cast<BFloat16*>(t.compensation) + begin : nullptr;
  const int64_t n = end - begin;

  constexpr bool kBlocks = !kMaster && !std::is_same_v<Param, Opmath> && !std::is_same_v<State, Opmath>;
  if constexpr (!kBlocks) {
    update_elements<kUpdate, kWeightDecay, kAmsgrad, kMaximize, Opmath>(
        param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, master, compensation, n, c, rounding_key, begin);
  } else {
    Staged<Param, float> p{param}, g{const_cast<Param*>(grad)};  // the gradient is never stored
    Staged<State, float> m{exp_avg}, v{exp_avg_sq}, vmax{max_exp_avg_sq};
    Staged<BFloat16, float> carried{compensation};
    for (int64_t offset = 0; offset < n; offset += kBlock) {
      const int64_t count = std::min(kBlock, n - offset);
      const int64_t later = offset + 2 * kBlock;  // two blocks ahead: measured no worse than four
      if (later < n) {
        const int64_t ahead = std::min(kBlock, n - later);
        p.prefetch(later, ahead);
        g.prefetch(later, ahead);
        m.prefetch(later, ahead);
        v.prefetch(later, ahead);
        vmax.prefetch(later, ahead);
        carried.prefetch(later, ahead);
      }
      float* const block_vmax = kAmsgrad ? vmax.load(offset, count) : nullptr;
      float* const block_carried = kKahan ? carried.load(offset, count) : nullptr;
      update_elements<kUpdate, kWeightDecay, kAmsgrad, kMaximize, float>(
          p.load(offset, count), g.load(offset, count), m.load(offset, count), v.load(offset, count), block_vmax,
          nullptr, block_carried, count, c, rounding_key, begin + offset);
      p.store(offset, count);
      m.store(offset, count);
      v.store(offset, count);
      if constexpr (kAmsgrad) vmax.store(offset, count);
      if constexpr (kKahan) carried.store(offset, count);
    }
  }
}

template <typename Precision, WeightDecay kWeightDecay, bool kAmsgrad, bool kMaximize>
void run(const TensorTable& table, const StepConstants& constants, int max_threads) {
  using Opmath = opmath_t<typename StorageOf<Precision::param>::type>;
  const AdamCoefficients<Opmath>* coefficients = constants.coefficients<Opmath>();
  const uint32_t* keys = constants.rounding_keys.data();
  parallel_for_each_span(table, max_threads, [&](int64_t i, int64_t begin, int64_t end) {
    adam_span<Precision, kWeightDecay, kAmsgrad, kMaximize>(table.tensors[i], begin, end, coefficients[i], keys[i]);
  });
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
