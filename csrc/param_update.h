// How the updated parameter is written back, written once for every kernel (CPU and CUDA; the Triton kernel
// spells the same operations in fusedadam/triton_kernels/param_update.py).
//
// Adam's math (adam_math.h) produces the new parameter in fp32. For a bf16 parameter that value must then
// lose 16 bits, and an update smaller than half an ulp of the parameter (Adam's steps are ~lr: next to a
// weight in [1, 2), any lr below 2^-8 ~ 0.004) is lost entirely by rounding to nearest. The modes:
//   kRoundToNearest       the parameter's own dtype is all there is (torch's behaviour)
//   kMasterWeights        an fp32 copy (master) is the parameter of record; the 16-bit one is its rounding
//   kStochasticRounding   bf16 rounded up with probability (distance to the lower value) / ulp: unbiased
//   kKahanSummation       a bf16 buffer keeps what rounding dropped and adds it to the next update
#pragma once

#include <cstdint>

#include "adam_math.h"
#include "float_bits.h"

namespace fusedadam {

// Codes shared with fusedadam/precision.py (PARAM_UPDATE_CODES).
enum class ParamUpdate : int {
  kRoundToNearest = 0,
  kMasterWeights = 1,
  kStochasticRounding = 2,
  kKahanSummation = 3,
};

// murmur3's 32-bit finalizer: every input bit flips each output bit with probability ~1/2.
FUSEDADAM_HOST_DEVICE uint32_t mix32(uint32_t h) {
  h ^= h >> 16;
  h *= 0x85EBCA6Bu;
  h ^= h >> 13;
  h *= 0xC2B2AE35u;
  h ^= h >> 16;
  return h;
}

// The random stream of one tensor at one step: a counter-based generator, so the bits of an element depend
// only on (seed, salt, step, index), never on threads, chunking or the backend. `salt` is the parameter's
// index in the optimizer (its state_dict id), so two tensors never share a stream.
FUSEDADAM_HOST_DEVICE uint32_t rounding_key(uint64_t seed, uint32_t salt, uint32_t step) {
  uint32_t h = mix32(static_cast<uint32_t>(seed) ^ 0x3C6EF372u);
  h = mix32(h ^ static_cast<uint32_t>(seed >> 32));
  h = mix32(h ^ salt);
  return mix32(h ^ step);
}

// 32 random bits for element `index` of the tensor whose stream is `key`.
FUSEDADAM_HOST_DEVICE uint32_t rounding_bits(uint32_t key, int64_t index) {
  const uint32_t low = static_cast<uint32_t>(index);
  const uint32_t high = static_cast<uint32_t>(static_cast<uint64_t>(index) >> 32);
  return mix32(key ^ (low * 0x9E3779B1u) ^ (high * 0x85EBCA77u));
}

// x rounded to bf16 (returned as the float of the same value), to nearest, ties to even. NaN stays NaN.
FUSEDADAM_HOST_DEVICE float round_to_bf16(float x) {
  const uint32_t bits = float_bits(x);
  const uint32_t rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) & 0xFFFF0000u;
  return x != x ? x : float_of_bits(rounded);
}

// x rounded to bf16 stochastically with 16 of `random`'s bits: adding a uniform value below one bf16 ulp to
// the magnitude and truncating rounds away from zero with probability (dropped bits) / ulp, so E[result] = x.
// Infinities stay infinite; the largest finite values may round up to infinity, as any rounding up would.
FUSEDADAM_HOST_DEVICE float round_to_bf16_stochastically(float x, uint32_t random) {
  const uint32_t bits = float_bits(x);
  const uint32_t rounded = (bits + (random >> 16)) & 0xFFFF0000u;
  const bool special = (bits & 0x7F800000u) == 0x7F800000u;  // inf or NaN: left as is
  return special ? x : float_of_bits(rounded);
}

// The value to store as the parameter after Adam moved it from `before` to `after` (both in Opmath; `before`
// is what was loaded, the master copy with kMasterWeights). Storing it in the parameter's dtype rounds to
// nearest, which is exact for the bf16 modes, whose result is already a bf16 value. kKahanSummation reads and
// updates `compensation` (the rounding error the bf16 buffer carries between steps); kStochasticRounding uses
// `random`. With kMasterWeights the caller stores `after` in the master copy.
template <ParamUpdate kUpdate, typename Opmath>
FUSEDADAM_HOST_DEVICE Opmath param_to_store(Opmath before, Opmath after, Opmath& compensation, uint32_t random) {
  if constexpr (kUpdate == ParamUpdate::kStochasticRounding) {
    return round_to_bf16_stochastically(after, random);
  } else if constexpr (kUpdate == ParamUpdate::kKahanSummation) {
    // Kahan's compensated sum of the updates: the part of (update + carried error) that the bf16 parameter
    // cannot take this step is carried to the next.
    const Opmath update = (after - before) + compensation;
    const Opmath stored = round_to_bf16(before + update);
    compensation = update - (stored - before);
    return stored;
  } else {
    return after;
  }
}

}  // namespace fusedadam
