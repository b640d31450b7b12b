// What each part of an 8-bit block costs in L1, one thread (bench/NOTES.md, "8-bit moments in the CPU kernel" and
// "8-bit moments: a decode without a conversion"): the kernel's per-block sequence (decode m and v into fp32 scratch,
// the fp32 update, each moment's absmax, encode m and v) over a 65536-element array, again without each part, and the
// one-pass sequence that was tried (the update reading the codes and taking the absmaxes in its own loop, then an
// encoding pass). Built with the CPU kernel's flags and the avx512-bf16 variant's target:
//
//   g++ -std=c++17 -O3 -fno-math-errno -fno-trapping-math -ffp-contract=off -Icsrc bench/eight_bit_block_cost.cpp
//       -o /tmp/eight_bit_block_cost && /tmp/eight_bit_block_cost [numel]
//
// Needs a CPU with AVX-512 BF16 (the pragma below); edit it for another variant. Each figure is the best of 7 rounds.
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

enum Variant { kKernel, kNoDecode, kNoUpdate, kNoEncode, kOnePass };
const char* const kNames[] = {"kernel (separate passes)", "no decode", "no update", "no encode",
                              "one pass + encode (tried)"};

struct Arrays {
  std::vector<float> p, g, absmax_m, absmax_v;
  std::vector<uint8_t> codes_m, codes_v;
};

// One step over every block; the variant is a template argument, so each compiles to its own vectorized loops.
template <Variant variant>
__attribute__((noinline)) void step(Arrays& a, const AdamCoefficients<float>& c) {
  const int64_t n = static_cast<int64_t>(a.p.size());
  for (int64_t at = 0; at < n; at += kBlock) {
    alignas(64) float m[kBlock], v[kBlock];
    const int64_t block = at / kBlock;
    float* __restrict p = a.p.data() + at;
    const float* __restrict g = a.g.data() + at;
    uint8_t* __restrict codes_m = a.codes_m.data() + at;
    uint8_t* __restrict codes_v = a.codes_v.data() + at;
    if constexpr (variant != kOnePass) {
      if (variant != kNoDecode) {
        q::decode_block<q::SignedMap>(codes_m, a.absmax_m[block], kBlock, m);
        q::decode_block<q::UnsignedMap>(codes_v, a.absmax_v[block], kBlock, v);
      } else {
        std::fill(m, m + kBlock, 1e-3f);
        std::fill(v, v + kBlock, 1e-6f);
      }
      if (variant != kNoUpdate) {
        for (int64_t i = 0; i < kBlock; ++i) {
          float unused = 0.0f;
          fusedadam::adam_update<WeightDecay::kDecoupled, false, false>(p[i], g[i], m[i], v[i], unused, c);
        }
      }
      a.absmax_m[block] = q::block_absmax(m, kBlock);
      a.absmax_v[block] = q::block_absmax(v, kBlock);
    } else {
      const float inverse_m = q::block_inverse_scale<q::SignedMap>(a.absmax_m[block]);
      const float inverse_v = q::block_inverse_scale<q::UnsignedMap>(a.absmax_v[block]);
      uint32_t largest_m = 0, largest_v = 0;
#pragma GCC ivdep
      for (int64_t i = 0; i < kBlock; ++i) {
        float mi = q::decode<q::SignedMap>(codes_m[i], inverse_m);
        float vi = q::decode<q::UnsignedMap>(codes_v[i], inverse_v);
        float unused = 0.0f;
        fusedadam::adam_update<WeightDecay::kDecoupled, false, false>(p[i], g[i], mi, vi, unused, c);
        m[i] = mi;
        v[i] = vi;
        largest_m = q::larger_magnitude(largest_m, q::magnitude_bits(mi));
        largest_v = q::larger_magnitude(largest_v, q::magnitude_bits(vi));
      }
      a.absmax_m[block] = fusedadam::float_of_bits(largest_m);
      a.absmax_v[block] = fusedadam::float_of_bits(largest_v);
    }
    if (variant != kNoEncode) {
      q::encode_block<q::SignedMap>(m, kBlock, a.absmax_m[block], codes_m);
      q::encode_block<q::UnsignedMap>(v, kBlock, a.absmax_v[block], codes_v);
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
  void (*const steps[])(Arrays&, const AdamCoefficients<float>&) = {
      step<kKernel>, step<kNoDecode>, step<kNoUpdate>, step<kNoEncode>, step<kOnePass>};
  for (int variant = kKernel; variant <= kOnePass; ++variant) {
    double best = 1e30;
    for (int round = 0; round < 7; ++round) {
      const auto start = std::chrono::steady_clock::now();
      for (int k = 0; k < 50; ++k) steps[variant](a, c);
      const std::chrono::duration<double, std::nano> took = std::chrono::steady_clock::now() - start;
      best = std::min(best, took.count() / 50 / n);
    }
    std::printf("%-28s %.3f ns an element\n", kNames[variant], best);
  }
}
