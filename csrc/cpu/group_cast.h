// Converting a group of 32 values of one 16-bit array to fp32 and back, with the widest instructions of the ISA
// variant being compiled (adam_span.h: FUSEDADAM_CPU_ISA). Same results as storage_cast.h's scalar load() / store()
// on every path (round to nearest even, NaN stays NaN, subnormals exact): the tests run every variant this CPU has.
//
// Why groups: converting inside the auto-vectorized Adam loop made GCC emit ~10 integer operations per vector and
// per array (bf16 2.0 ns/element in cache against fp32's 1.2; fp16 worse), and it cannot use F16C or AVX512-BF16
// there. Inlined per group of 32, each conversion is one or two instructions and the loop stays one stream over all
// arrays, which the hardware prefetchers follow (blocks of 512 converted in passes of their own did not:
// bench/NOTES.md).
//
// Included inside the variant's namespace and target pragma: no include guard of its own, and nothing here may
// be defined outside adam_span.h. The variant says what it has in FUSEDADAM_CPU_F16C / _AVX512 / _AVX512_BF16:
// g++ does not define __F16C__ and the like after `#pragma GCC target` (C++ is lexed ahead of parsing).

constexpr int64_t kGroup = 32;

#define FUSEDADAM_INLINE inline __attribute__((always_inline))

FUSEDADAM_INLINE void widen_group(const BFloat16* __restrict src, float* __restrict dst) {
#if FUSEDADAM_CPU_AVX512
  const auto* halves = reinterpret_cast<const __m256i*>(src);
  for (int k = 0; k < 2; ++k) {
    const __m512i bits = _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(halves + k)), 16);
    _mm512_store_ps(dst + 16 * k, _mm512_castsi512_ps(bits));
  }
#else
  for (int64_t i = 0; i < kGroup; ++i) dst[i] = load(src[i]);
#endif
}

FUSEDADAM_INLINE void narrow_group(const float* __restrict src, BFloat16* __restrict dst) {
#if FUSEDADAM_CPU_AVX512_BF16
  // vcvtne2ps2bf16 rounds to nearest even and quiets NaN as store() does, but reads fp32 subnormals as zero, where
  // store() rounds them to bf16 subnormals: a group holding one (exponent 0, mantissa not 0) is narrowed by store().
  const __m512i exponent = _mm512_set1_epi32(0x7f800000);
  const __m512i mantissa = _mm512_set1_epi32(0x007fffff);
  const __m512 low = _mm512_load_ps(src);
  const __m512 high = _mm512_load_ps(src + 16);
  const __mmask16 low_subnormal = _mm512_mask_test_epi32_mask(
      _mm512_testn_epi32_mask(_mm512_castps_si512(low), exponent), _mm512_castps_si512(low), mantissa);
  const __mmask16 high_subnormal = _mm512_mask_test_epi32_mask(
      _mm512_testn_epi32_mask(_mm512_castps_si512(high), exponent), _mm512_castps_si512(high), mantissa);
  if (__builtin_expect((low_subnormal | high_subnormal) == 0, 1)) {
    _mm512_storeu_si512(dst, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(high, low)));
    return;
  }
#endif
  for (int64_t i = 0; i < kGroup; ++i) store(dst[i], src[i]);
}

FUSEDADAM_INLINE void widen_group(const Float16* __restrict src, float* __restrict dst) {
#if FUSEDADAM_CPU_AVX512
  const auto* halves = reinterpret_cast<const __m256i*>(src);
  for (int k = 0; k < 2; ++k) _mm512_store_ps(dst + 16 * k, _mm512_cvtph_ps(_mm256_loadu_si256(halves + k)));
#elif FUSEDADAM_CPU_F16C
  for (int64_t i = 0; i < kGroup; i += 8) {
    _mm256_store_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  }
#else
  for (int64_t i = 0; i < kGroup; ++i) dst[i] = load(src[i]);
#endif
}

FUSEDADAM_INLINE void narrow_group(const float* __restrict src, Float16* __restrict dst) {
#if FUSEDADAM_CPU_AVX512
  for (int64_t i = 0; i < kGroup; i += 16) {
    const __m256i half = _mm512_cvtps_ph(_mm512_load_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), half);
  }
#elif FUSEDADAM_CPU_F16C
  for (int64_t i = 0; i < kGroup; i += 8) {
    const __m128i half = _mm256_cvtps_ph(_mm256_load_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), half);
  }
#else
  for (int64_t i = 0; i < kGroup; ++i) store(dst[i], src[i]);
#endif
}

// A group of one array as fp32: the tensor's own memory where it is stored in fp32, else widened into `scratch`.
template <typename Storage>
FUSEDADAM_INLINE float* group_of(Storage* src, float* scratch) {
  if constexpr (std::is_same_v<Storage, float>) {
    return src;
  } else {
    widen_group(src, scratch);
    return scratch;
  }
}

// Rounds a group back into a 16-bit array (nothing to do for one updated in place).
template <typename Storage>
FUSEDADAM_INLINE void store_group(const float* values, Storage* dst) {
  if constexpr (!std::is_same_v<Storage, float>) narrow_group(values, dst);
}

#undef FUSEDADAM_INLINE
