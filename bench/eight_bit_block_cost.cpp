// What each part of an 8-bit block costs in L1, one thread (bench/NOTES.md, "8-bit moments in the CPU kernel"): the
// kernel's per-block sequence (decode m and v, the fp32 update, encode m and v) over a 65536-element array, again
// without each part, and with decode fused into the update loop. Built with the CPU kernel's flags and the
// avx512-bf16 variant's target:
//
//   g++ -std=c++17 -O3 -fno-math-errno -fno-trapping-math -ffp-contract=off -Icsrc \
//       bench/eight_bit_block_cost.cpp -o /tmp/eight_bit_block_cost && /tmp/eight_bit_block_cost [numel]
//
// Needs a CPU with AVX-512 BF16 (the pragma below); edit it for another variant.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "moment_quantization.h"

#pragma GCC target("sse3,ssse3,sse4.1,sse4.2,popcnt,avx,avx2,bmi,bmi2,f16c,fma,lzcnt,movbe,avx512f,avx512bw,avx512cd,avx512dq,avx512vl,avx512bf16,prefer-vector-width=512")

namespace q = fusedadam::quantization;
using fusedadam::AdamCoefficients;
using fusedadam::WeightDecay;
constexpr int64_t kBlock = q::kBlock;

#define INLINE inline __attribute__((always_inline))

template <typename Map>
INLINE void decode_block(const uint8_t* __restrict codes, float absmax, float* __restrict values) {
  const float inverse_scale = q::block_inverse_scale<Map>(absmax);
  for (int64_t i = 0; i < kBlock; ++i) values[i] = q::decode<Map>(codes[i], inverse_scale);
}

template <typename Map>
INLINE void encode_block(const float* __restrict values, uint8_t* __restrict codes, float* __restrict absmax) {
  *absmax = q::block_absmax(values, kBlock);
  const float scale = q::block_scale<Map>(*absmax);
  for (int64_t i = 0; i < kBlock; ++i) codes[i] = q::encode<Map>(values[i], scale);
}

INLINE void update(float* __restrict p, const float* __restrict g, float* __restrict m, float* __restrict v,
                   const AdamCoefficients<float>& c) {
  for (int64_t i = 0; i < kBlock; ++i) {
    float unused = 0.0f;
    fusedadam::adam_update<WeightDecay::kDecoupled, false, false>(p[i], g[i], m[i], v[i], unused, c);
  }
}

enum Variant { kAll, kNoDecode, kNoUpdate, kNoEncode, kFused };

struct Arrays {
  std::vector<float> p, g, absmax_m, absmax_v;
  std::vector<uint8_t> codes_m, codes_v;
};

__attribute__((noinline)) void step(Variant variant, Arrays& a, const AdamCoefficients<float>& c) {
  const int64_t n = static_cast<int64_t>(a.p.size());
  for (int64_t at = 0; at < n; at += kBlock) {
    alignas(64) float m[kBlock], v[kBlock];
    const int64_t block = at / kBlock;
    float* __restrict p = a.p.data() + at;
    const float* __restrict g = a.g.data() + at;
    if (variant == kFused) {
      const float scale_m = q::block_inverse_scale<q::SignedMap>(a.absmax_m[block]);
      const float scale_v = q::block_inverse_scale<q::UnsignedMap>(a.absmax_v[block]);
      const uint8_t* __restrict codes_m = a.codes_m.data() + at;
      const uint8_t* __restrict codes_v = a.codes_v.data() + at;
#pragma GCC ivdep
      for (int64_t i = 0; i < kBlock; ++i) {
        float mi = q::decode<q::SignedMap>(codes_m[i], scale_m), vi = q::decode<q::UnsignedMap>(codes_v[i], scale_v);
        float pi = p[i], unused = 0.0f;
        fusedadam::adam_update<WeightDecay::kDecoupled, false, false>(pi, g[i], mi, vi, unused, c);
        p[i] = pi;
        m[i] = mi;
        v[i] = vi;
      }
    } else {
      if (variant != kNoDecode) {
        decode_block<q::SignedMap>(a.codes_m.data() + at, a.absmax_m[block], m);
        decode_block<q::UnsignedMap>(a.codes_v.data() + at, a.absmax_v[block], v);
      } else {
        std::fill(m, m + kBlock, 1e-3f);
        std::fill(v, v + kBlock, 1e-6f);
      }
      if (variant != kNoUpdate) update(p, g, m, v, c);
    }
    if (variant != kNoEncode) {
      encode_block<q::SignedMap>(m, a.codes_m.data() + at, &a.absmax_m[block]);
      encode_block<q::UnsignedMap>(v, a.codes_v.data() + at, &a.absmax_v[block]);
    }
  }
}

int main(int argc, char** argv) {
  const int64_t n = (argc > 1 ? std::atol(argv[1]) : 65536) / kBlock * kBlock;
  Arrays a{std::vector<float>(n), std::vector<float>(n), std::vector<float>(n / kBlock, 1.0f),
           std::vector<float>(n / kBlock, 1.0f), std::vector<uint8_t>(n, 3), std::vector<uint8_t>(n, 5)};
  for (int64_t i = 0; i < n; ++i) {
    a.p[i] = std::sin(0.1f * i);
    a.g[i] = 0.01f * std::cos(0.37f * i);
  }
  const auto c = fusedadam::make_adam_coefficients<float>(1e-3, 0.9, 0.999, 1e-8, 0.01, 10);
  const char* names[] = {"all", "no decode", "no update", "no encode", "decode fused into update"};
  for (int variant = kAll; variant <= kFused; ++variant) {
    double best = 1e30;
    for (int round = 0; round < 7; ++round) {
      const auto start = std::chrono::steady_clock::now();
      for (int k = 0; k < 50; ++k) step(static_cast<Variant>(variant), a, c);
      const std::chrono::duration<double, std::nano> took = std::chrono::steady_clock::now() - start;
      best = std::min(best, took.count() / 50 / n);
    }
    std::printf("%-26s %.3f ns an element\n", names[variant], best);
  }
}
