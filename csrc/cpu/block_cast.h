// Converting a block of one 16-bit array to fp32 scratch and back, with the widest instructions of the ISA variant
// being compiled (adam_span.h: FUSEDADAM_CPU_ISA). Same results as storage_cast.h's scalar load() / store() on
// every path (round to nearest even, NaN stays NaN, subnormals exact): the tests run every variant this CPU has.
//
// Why blocks: loading and rounding inside the Adam loop made GCC interleave ~10 conversion operations per
// vector with the math (bf16 2.0 ns/element in cache against fp32's 1.2); as passes of their own over a block
// in L1 they cost 0.04 ns/element to widen and, with AVX512-BF16, a few hundredths to narrow (bench/NOTES.md).
//
// Included inside the variant's namespace and target pragma: no include guard of its own, and nothing here may
// be defined outside adam_span.h. The variant says what it has in FUSEDADAM_CPU_F16C / _AVX512 / _AVX512_BF16:
// g++ does not define __F16C__ and the like after `#pragma GCC target` (C++ is preprocessed ahead of parsing).

__attribute__((noinline)) void widen(const BFloat16* __restrict src, float* __restrict dst, int64_t n) {
  const auto* bits = reinterpret_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = float_of_bits(static_cast<uint32_t>(bits[i]) << 16);
}

__attribute__((noinline)) void narrow(const float* __restrict src, BFloat16* __restrict dst, int64_t n) {
  int64_t i = 0;
#if FUSEDADAM_CPU_AVX512_BF16
  // vcvtne2ps2bf16 rounds to nearest even and quiets NaN as store() does, but reads fp32 subnormals as zero,
  // where store() rounds them to bf16 subnormals: a vector holding one is narrowed by store() instead.
  const __m512i exponent = _mm512_set1_epi32(0x7f800000);
  const __m512i mantissa = _mm512_set1_epi32(0x007fffff);
  for (; i + 32 <= n; i += 32) {
    const __m512 low = _mm512_loadu_ps(src + i);
    const __m512 high = _mm512_loadu_ps(src + i + 16);
    const __mmask16 low_subnormal =
        _mm512_mask_test_epi32_mask(_mm512_testn_epi32_mask(_mm512_castps_si512(low), exponent),
                                    _mm512_castps_si512(low), mantissa);
    const __mmask16 high_subnormal =
        _mm512_mask_test_epi32_mask(_mm512_testn_epi32_mask(_mm512_castps_si512(high), exponent),
                                    _mm512_castps_si512(high), mantissa);
    if (__builtin_expect((low_subnormal | high_subnormal) != 0, 0)) {
      for (int64_t k = i; k < i + 32; ++k) store(dst[k], src[k]);
      continue;
    }
    _mm512_storeu_si512(dst + i, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(high, low)));
  }
#endif
  for (; i < n; ++i) store(dst[i], src[i]);
}

__attribute__((noinline)) void widen(const Float16* __restrict src, float* __restrict dst, int64_t n) {
  int64_t i = 0;
#if FUSEDADAM_CPU_AVX512
  for (; i + 16 <= n; i += 16) {
    _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i))));
  }
#elif FUSEDADAM_CPU_F16C
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  }
#endif
  for (; i < n; ++i) dst[i] = load(src[i]);
}

__attribute__((noinline)) void narrow(const float* __restrict src, Float16* __restrict dst, int64_t n) {
  int64_t i = 0;
#if FUSEDADAM_CPU_AVX512
  for (; i + 16 <= n; i += 16) {
    const __m256i half = _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), half);
  }
#elif FUSEDADAM_CPU_F16C
  for (; i + 8 <= n; i += 8) {
    const __m128i half = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), half);
  }
#endif
  for (; i < n; ++i) store(dst[i], src[i]);
}
