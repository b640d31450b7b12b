// The 8-bit maps of Adam's moments, for the CPU and CUDA kernels (fusedadam/quantization.py is the same map in torch,
// with the reasons for it; tests/test_quantization.py compares the two code for code).
//
// A block of kBlock elements keeps its absmax (fp32) and one byte per element: x / absmax on the grid of a one-byte
// float whose largest value, kTop, stands for the absmax. Every step below is one IEEE fp32 operation or integer
// arithmetic on the bits, so every backend that follows it writes the same codes for the same fp32 moments.
#pragma once

#include <cmath>
#include <cstdint>

#include "adam_math.h"  // FUSEDADAM_HOST_DEVICE, nan_propagating_max
#include "float_bits.h"

namespace fusedadam::quantization {

constexpr int64_t kBlock = 256;

template <int kExponent, int kMantissa, bool kSigned>
struct FloatMap {
  static_assert(kExponent + kMantissa + (kSigned ? 1 : 0) == 8, "a map fills exactly one byte");
  static constexpr int kExponentBits = kExponent;
  static constexpr int kMantissaBits = kMantissa;
  static constexpr bool kIsSigned = kSigned;
  static constexpr uint32_t kBias = (1u << kExponent) - 1;  // the largest exponent field is the binade [1, 2)
  static constexpr uint32_t kMaxMagnitude = (1u << (kExponent + kMantissa)) - 1;
  static constexpr float kTop = 2.0f - 1.0f / static_cast<float>(1u << kMantissa);  // exact
  // 2^(1 - bias), the smallest normal, as fp32 bits.
  static constexpr uint32_t kSmallestNormalBits = (128u - kBias) << 23;
};
using SignedMap = FloatMap<4, 3, true>;     // exp_avg
using UnsignedMap = FloatMap<5, 3, false>;  // exp_avg_sq (and max_exp_avg_sq)

// What |x| is multiplied by before rounding: kTop / absmax. An all-zero block gets 0 (its codes are then 0, not the
// NaN of 0 * inf); a non-finite absmax gives 0 or NaN, and its block decodes to inf or NaN.
template <typename Map>
FUSEDADAM_HOST_DEVICE float block_scale(float absmax) {
  return absmax == 0.0f ? 0.0f : Map::kTop / absmax;
}

template <typename Map>
FUSEDADAM_HOST_DEVICE float block_inverse_scale(float absmax) {
  return absmax / Map::kTop;
}

// The magnitude code of y = |x| * scale: the nearest grid value, ties to even; NaN and anything past the grid get the
// largest code. Both candidate codes are computed and one selected, with no early return, so that compilers turn the
// loop over a block into vector selects (with branches GCC kept it scalar: 1.9 ns an element against 0.2).
template <typename Map>
FUSEDADAM_HOST_DEVICE uint32_t encode_magnitude(float y) {
  constexpr int kDrop = 23 - Map::kMantissaBits;
  const float smallest_normal = float_of_bits(Map::kSmallestNormalBits);
  // Normal y: keep the top mantissa bits, the dropped ones rounded to nearest even; a carry runs into the exponent
  // (the next binade's first code). Then move the exponent from fp32's bias to the map's. NaN and inf land past the
  // largest code (their exponent field is all ones) and are clamped below.
  const uint32_t bits = float_bits(y);
  const uint32_t normal =
      ((bits + ((1u << (kDrop - 1)) - 1) + ((bits >> kDrop) & 1u)) >> kDrop) - ((127u - Map::kBias) << Map::kMantissaBits);
  // Subnormal y: the nearest multiple of the step, ties to even. y / step (exact: a power of two) added to 2^23, whose
  // ulp is 1, is rounded there by the fp32 addition itself, and the sum's bits count the steps: rint(y / step) (the
  // value just under the smallest normal may round up to that normal's code, 2^m steps). The division is a
  // multiplication by 2^(bias + m - 1), not y + step * 2^23: a compiler that contracts (nvcc, Triton, GCC's
  // -ffp-contract=fast) would fuse y = |x| * scale into that add and round the exact product instead of y; fused with
  // this exact multiplication instead, it rounds the same sum.
  const float inverse_step = float_of_bits((126u + Map::kBias + Map::kMantissaBits) << 23);  // 2^(bias + m - 1)
  const uint32_t subnormal = float_bits((y < smallest_normal ? y : 0.0f) * inverse_step + 0x1p23f) - 0x4B000000u;
  const uint32_t code = y < smallest_normal ? subnormal : normal;
  return code < Map::kMaxMagnitude ? code : Map::kMaxMagnitude;
}

// The code's bits, moved to fp32's mantissa and exponent fields and rebiased, are the value itself when its exponent
// field is not 0. When it is 0, the same bits one binade up read 2^(1 - bias) * (1 + m / 2^kM); less that binade's
// leading one (exact: both lie in one binade) they are m steps of 2^(1 - bias - kM), the subnormal value. Integer
// adds and one fp32 subtraction, no conversion, and no fp32 subnormal anywhere (flush-to-zero modes cannot change it).
template <typename Map>
FUSEDADAM_HOST_DEVICE float decode_magnitude(uint32_t code) {
  const uint32_t normal = (code << (23 - Map::kMantissaBits)) + ((127u - Map::kBias) << 23);
  const float subnormal = float_of_bits(normal + (1u << 23)) - float_of_bits(Map::kSmallestNormalBits);
  return code >= (1u << Map::kMantissaBits) ? float_of_bits(normal) : subnormal;
}

template <typename Map>
FUSEDADAM_HOST_DEVICE uint8_t encode(float x, float scale) {
  uint32_t code = encode_magnitude<Map>(std::fabs(x) * scale);
  if (Map::kIsSigned && x < 0.0f) code |= 0x80u;
  return static_cast<uint8_t>(code);
}

template <typename Map>
FUSEDADAM_HOST_DEVICE float decode(uint8_t code, float inverse_scale) {
  const uint32_t magnitude = Map::kIsSigned ? (code & 0x7Fu) : code;
  float value = decode_magnitude<Map>(magnitude);
  if (Map::kIsSigned && (code & 0x80u) != 0) value = -value;
  return value * inverse_scale;
}

// |x| as fp32 bits. On magnitudes the bit patterns order as the values do, and every NaN's lies above inf's, so an
// integer max of them is the absmax with NaN propagating; it vectorizes, where a float max that keeps NaNs does not.
FUSEDADAM_HOST_DEVICE uint32_t magnitude_bits(float x) { return float_bits(x) & 0x7FFFFFFFu; }

FUSEDADAM_HOST_DEVICE uint32_t larger_magnitude(uint32_t a, uint32_t b) { return a > b ? a : b; }

FUSEDADAM_HOST_DEVICE float block_absmax(const float* x, int64_t n) {
  uint32_t largest = 0;
  for (int64_t i = 0; i < n; ++i) largest = larger_magnitude(largest, magnitude_bits(x[i]));
  return float_of_bits(largest);
}

// One block of a moment (n <= kBlock values): its codes for its absmax (block_absmax), and back. The kernels call
// these per block; always inlined, so each CPU ISA variant compiles the loops with its own vectors. The absmax comes
// in by value: with it taken and stored inside through a pointer, the CPU 8-bit step ran 6-10% slower (bench/NOTES.md).
template <typename Map>
FUSEDADAM_HOST_DEVICE void encode_block(const float* __restrict__ values, int64_t n, float absmax,
                                        uint8_t* __restrict__ codes) {
  const float scale = block_scale<Map>(absmax);
  for (int64_t i = 0; i < n; ++i) codes[i] = encode<Map>(values[i], scale);
}

template <typename Map>
FUSEDADAM_HOST_DEVICE void decode_block(const uint8_t* __restrict__ codes, float absmax, int64_t n,
                                        float* __restrict__ values) {
  const float inverse_scale = block_inverse_scale<Map>(absmax);
  for (int64_t i = 0; i < n; ++i) values[i] = decode<Map>(codes[i], inverse_scale);
}

// n fp32 values to n codes and one absmax per block (the last block may be short).
template <typename Map>
inline void quantize_span(const float* x, int64_t n, uint8_t* codes, float* absmax) {
  for (int64_t start = 0, block = 0; start < n; start += kBlock, ++block) {
    const int64_t length = n - start < kBlock ? n - start : kBlock;
    absmax[block] = block_absmax(x + start, length);
    encode_block<Map>(x + start, length, absmax[block], codes + start);
  }
}

template <typename Map>
inline void dequantize_span(const uint8_t* codes, const float* absmax, int64_t n, float* x) {
  for (int64_t start = 0, block = 0; start < n; start += kBlock, ++block) {
    decode_block<Map>(codes + start, absmax[block], n - start < kBlock ? n - start : kBlock, x + start);
  }
}

}  // namespace fusedadam::quantization
