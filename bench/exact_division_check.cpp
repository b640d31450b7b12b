// divide_by_step_constant (csrc/adam_math.h) against IEEE division, for every fp32 x it can be given, and more: +0,
// every value from 2^-100 to 2^64, inf and the NaNs (sqrt(v) is 0, or between 2^-74.5 and 2^64, or inf or NaN).
// The divisors are the kernels' own: bias_correction2_sqrt and its reciprocal from make_adam_coefficients<float>, for
// beta2 in {0.9, 0.95, 0.98, 0.99, 0.999, 0.9999, 1 - 2^-40} at steps {1, 2, 3, 10, 100, 1000, 5000, 10^6}, and 0.5
// and the last fp32 below 1 (bench/NOTES.md, "Adam's division by the step's constant"). With the kernel's flags:
//
//   g++ -std=c++17 -O3 -fopenmp -fno-math-errno -fno-trapping-math -ffp-contract=off -march=native -Icsrc
//       bench/exact_division_check.cpp -o /tmp/exact_division_check && /tmp/exact_division_check
//
// Prints each divisor's count of x whose quotient differs from x / c in its bits (two NaNs count as equal) and exits
// 1 if any does. 20 s for all 58 on the 2-core Xeon of NOTES.md.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "adam_math.h"

namespace {

float float_of(uint32_t bits) {
  float x;
  std::memcpy(&x, &bits, sizeof x);
  return x;
}

uint32_t bits_of(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return bits;
}

// The x whose quotient differs, over the bit patterns [first, last).
uint64_t count_differences(float c, float inverse_c, uint32_t first, uint64_t last) {
  uint64_t differences = 0;
#pragma omp parallel for reduction(+ : differences) schedule(static)
  for (int64_t bits = first; bits < static_cast<int64_t>(last); ++bits) {
    const float x = float_of(static_cast<uint32_t>(bits));
    const float ours = fusedadam::divide_by_step_constant<true>(x, c, inverse_c);
    const float ieee = x / c;
    const bool both_nan = std::isnan(ours) && std::isnan(ieee);
    differences += (bits_of(ours) != bits_of(ieee)) && !both_nan;
  }
  return differences;
}

}  // namespace

int main() {
  std::vector<fusedadam::AdamCoefficients<float>> divisors;
  for (double beta2 : {0.9, 0.95, 0.98, 0.99, 0.999, 0.9999, 1.0 - std::ldexp(1.0, -40)}) {
    for (double step : {1.0, 2.0, 3.0, 10.0, 100.0, 1000.0, 5000.0, 1e6}) {
      divisors.push_back(fusedadam::make_adam_coefficients<float>(1e-3, 0.9, beta2, 1e-8, 0.0, step));
    }
  }
  for (float c : {0.5f, std::nextafter(1.0f, 0.0f)}) {
    fusedadam::AdamCoefficients<float> coefficients{};
    coefficients.bias_correction2_sqrt = c;
    coefficients.inverse_bias_correction2_sqrt = 1.0f / c;
    divisors.push_back(coefficients);
  }
  const uint32_t smallest_checked = 0x0D800000u;  // 2^-100
  const uint32_t largest_checked = 0x5F800000u;   // 2^64
  const uint32_t infinity = 0x7F800000u;
  int failures = 0;
  for (const auto& coefficients : divisors) {
    const float c = coefficients.bias_correction2_sqrt;
    const float inverse_c = coefficients.inverse_bias_correction2_sqrt;
    const uint64_t differences =
        count_differences(c, inverse_c, 0, 1) +
        count_differences(c, inverse_c, smallest_checked, largest_checked + 1ull) +
        count_differences(c, inverse_c, infinity, 0x80000000ull);
    std::printf("c = %.9g (1/c rounded: %.9g): %llu of the x differ\n", c, inverse_c,
                static_cast<unsigned long long>(differences));
    failures += differences != 0;
  }
  std::printf("%d of %zu divisors had differences\n", failures, divisors.size());
  return failures == 0 ? 0 : 1;
}
