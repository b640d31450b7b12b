// Loading a storage dtype into its math type and rounding back (host side).
//
// Both 16-bit formats are converted with integer and float operations written without branches, so
// the compiler vectorizes them on every ISA: GCC 12 cannot vectorize _Float16 <-> float conversions
// (measured 10x slower than torch's fused step on fp16) and has no arithmetic bf16 type. Rounding is
// to nearest even; NaN stays NaN; overflow gives inf; fp16 subnormals are exact.
#pragma once

#include <cstdint>
#include <cstring>

#include "../float_bits.h"
#include "../tensor_table.h"  // DType

namespace fusedadam::cpu {

struct BFloat16 {
  uint16_t bits;
};

struct Float16 {
  uint16_t bits;
};

template <DType kDType> struct StorageOf;
template <> struct StorageOf<DType::kFloat32> { using type = float; };
template <> struct StorageOf<DType::kFloat64> { using type = double; };
template <> struct StorageOf<DType::kFloat16> { using type = Float16; };
template <> struct StorageOf<DType::kBFloat16> { using type = BFloat16; };

template <typename Storage>
struct OpmathOf {
  using type = float;
};
template <>
struct OpmathOf<double> {
  using type = double;
};
template <typename Storage>
using opmath_t = typename OpmathOf<Storage>::type;

inline float load(float x) { return x; }
inline double load(double x) { return x; }
inline float load(Float16 x) {
  const uint32_t sign = static_cast<uint32_t>(x.bits & 0x8000u) << 16;
  const uint32_t exponent_mantissa = static_cast<uint32_t>(x.bits & 0x7fffu) << 13;
  const uint32_t exponent = exponent_mantissa & 0x0f800000u;
  // Normal numbers: rebias the exponent by 127 - 15.
  const uint32_t normal = exponent_mantissa + ((127u - 15u) << 23);
  // Inf and NaN: all-ones exponent.
  const uint32_t special = exponent_mantissa + ((255u - 31u) << 23);
  // Zero and subnormals: let the FPU normalize mantissa * 2^-24 exactly.
  const float subnormal_magic = float_of_bits(113u << 23);  // 2^-14
  const uint32_t subnormal =
      float_bits(float_of_bits(exponent_mantissa + ((127u - 15u) << 23) + (1u << 23)) - subnormal_magic);
  const uint32_t magnitude = exponent == 0x0f800000u ? special : (exponent == 0 ? subnormal : normal);
  return float_of_bits(sign | magnitude);
}
inline float load(BFloat16 x) {
  const uint32_t bits = static_cast<uint32_t>(x.bits) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline void store(float& dst, float x) { dst = x; }
inline void store(double& dst, double x) { dst = x; }
inline void store(Float16& dst, float x) {
  const uint32_t bits = float_bits(x);
  const uint32_t sign = (bits >> 16) & 0x8000u;
  const uint32_t magnitude = bits & 0x7fffffffu;
  // Too large (or inf): inf; NaN: a quiet NaN.
  const uint32_t overflow = magnitude > 0x7f800000u ? 0x7e00u : 0x7c00u;
  // Below the smallest normal fp16: adding 0.5 in this float's scale rounds the mantissa to nearest even.
  const float denormal_magic = float_of_bits(((127u - 15u) + (23u - 10u) + 1u) << 23);
  const uint32_t subnormal = float_bits(float_of_bits(magnitude) + denormal_magic) - float_bits(denormal_magic);
  // Normal: rebias the exponent, round to nearest even on the 13 dropped bits.
  const uint32_t odd = (magnitude >> 13) & 1u;
  const uint32_t normal = (magnitude + ((15u - 127u) << 23) + 0xfffu + odd) >> 13;
  const uint32_t half = magnitude >= 0x47800000u ? overflow : (magnitude < 0x38800000u ? subnormal : normal);
  dst.bits = static_cast<uint16_t>(sign | half);
}
inline void store(BFloat16& dst, float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  const uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
  const bool is_nan = (bits & 0x7fffffffu) > 0x7f800000u;
  dst.bits = static_cast<uint16_t>(is_nan ? ((bits >> 16) | 0x40u) : rounded);
}

}  // namespace fusedadam::cpu
