// Loading a storage dtype into its math type and rounding back (host side).
//
// fp16 uses the compiler's _Float16, which vectorizes through F16C in the x86-64-v3/v4 clones.
// bf16 is converted with integer operations (round to nearest even, NaN stays NaN), which vectorize
// on every ISA; GCC 12 has no arithmetic bf16 type.
#pragma once

#include <cstdint>
#include <cstring>

namespace fusedadam::cpu {

struct BFloat16 {
  uint16_t bits;
};

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
inline float load(_Float16 x) { return static_cast<float>(x); }
inline float load(BFloat16 x) {
  const uint32_t bits = static_cast<uint32_t>(x.bits) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline void store(float& dst, float x) { dst = x; }
inline void store(double& dst, double x) { dst = x; }
inline void store(_Float16& dst, float x) { dst = static_cast<_Float16>(x); }
inline void store(BFloat16& dst, float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  const uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
  const bool is_nan = (bits & 0x7fffffffu) > 0x7f800000u;
  dst.bits = static_cast<uint16_t>(is_nan ? ((bits >> 16) | 0x40u) : rounded);
}

}  // namespace fusedadam::cpu
