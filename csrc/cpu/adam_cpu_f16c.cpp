// fp16 storage through the F16C instructions (x86-64-v3 and up): GCC 12 cannot vectorize _Float16
// conversions, and the portable branchless ones in storage_cast.h cost ~10 vector operations per element
// where F16C needs one (20M fp16 elements: 37 ms portable, torch fused 9 ms). Each span is converted in
// blocks to fp32 scratch arrays, updated by the same float loop as fp32 storage, and rounded back to
// nearest even. The dispatcher in adam_cpu.cpp only calls this where cpuid reports F16C.
#include "adam_cpu_f16c.h"

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <type_traits>

#include "float_span.h"
#include "multi_tensor_cpu.h"
#include "storage_cast.h"

#define FUSEDADAM_F16C __attribute__((target("arch=x86-64-v3")))

namespace fusedadam::cpu {
namespace {

constexpr int64_t kBlock = 512;  // elements per conversion block: 5 x 2 KB of scratch stays in L1

FUSEDADAM_F16C inline void widen(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  }
  for (; i < n; ++i) dst[i] = load(Float16{src[i]});
}

FUSEDADAM_F16C inline void narrow(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  for (; i < n; ++i) {
    Float16 h;
    store(h, src[i]);
    dst[i] = h.bits;
  }
}

template <WeightDecay kWeightDecay, bool kAmsgrad, bool kMaximize>
FUSEDADAM_F16C void adam_span_f16c(const TensorSlot& t, int64_t begin, int64_t end, const AdamCoefficients<float>& c) {
  auto* param = static_cast<uint16_t*>(t.param) + begin;
  auto* grad = static_cast<const uint16_t*>(t.grad) + begin;
  auto* exp_avg = static_cast<uint16_t*>(t.exp_avg) + begin;
  auto* exp_avg_sq = static_cast<uint16_t*>(t.exp_avg_sq) + begin;
  auto* max_exp_avg_sq = kAmsgrad ? static_cast<uint16_t*>(t.max_exp_avg_sq) + begin : nullptr;
  alignas(32) float p[kBlock], g[kBlock], m[kBlock], v[kBlock], vmax[kAmsgrad ? kBlock : 1];
  for (int64_t offset = 0; offset < end - begin; offset += kBlock) {
    const int64_t n = std::min(kBlock, end - begin - offset);
    widen(param + offset, p, n);
    widen(grad + offset, g, n);
    widen(exp_avg + offset, m, n);
    widen(exp_avg_sq + offset, v, n);
    if (kAmsgrad) widen(max_exp_avg_sq + offset, vmax, n);
    update_float_span<kWeightDecay, kAmsgrad, kMaximize>(p, g, m, v, vmax, n, c);
    narrow(p, param + offset, n);
    narrow(m, exp_avg + offset, n);
    narrow(v, exp_avg_sq + offset, n);
    if (kAmsgrad) narrow(vmax, max_exp_avg_sq + offset, n);
  }
}

template <WeightDecay kWeightDecay, bool kAmsgrad, bool kMaximize>
void run(const TensorTable& table, const std::vector<AdamCoefficients<float>>& coefficients, int max_threads) {
  parallel_for_each_span(table, max_threads, [&](int64_t i, int64_t begin, int64_t end) {
    adam_span_f16c<kWeightDecay, kAmsgrad, kMaximize>(table.tensors[i], begin, end, coefficients[i]);
  });
}

}  // namespace

bool f16c_supported() {
  // FUSEDADAM_DISABLE_F16C=1 forces the portable conversions (to test them on machines that have F16C).
  const char* disable = std::getenv("FUSEDADAM_DISABLE_F16C");
  if (disable != nullptr && disable[0] != '\0' && disable[0] != '0') return false;
  __builtin_cpu_init();
  return __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

void adam_step_f16c(const TensorTable& table, const std::vector<AdamCoefficients<float>>& coefficients,
                    const AdamHyperparameters& hp, int max_threads) {
  dispatch_adam_mode(hp.weight_decay_mode, hp.amsgrad, hp.maximize, [&](auto weight_decay, auto amsgrad, auto maximize) {
    run<decltype(weight_decay)::value, decltype(amsgrad)::value, decltype(maximize)::value>(table, coefficients,
                                                                                           max_threads);
  });
}

}  // namespace fusedadam::cpu

#else

namespace fusedadam::cpu {
bool f16c_supported() { return false; }
void adam_step_f16c(const TensorTable&, const std::vector<AdamCoefficients<float>>&, const AdamHyperparameters&,
                    int) {}
}  // namespace fusedadam::cpu

#endif
