// The Adam update over fp32 arrays, shared by the generic CPU kernel and the F16C fp16 path.
#pragma once

#include <cstdint>
#include "../adam_modes.h"
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

}  // namespace fusedadam::cpu
