// The ISA variants of the CPU kernel and what the dispatcher hands each of them. Every variant is the same source
// (adam_span.h) compiled for another instruction set in a translation unit of its own (adam_cpu_isa_*.cpp), in a
// namespace of its own; adam_cpu.cpp picks one at load time from cpuid, or FUSEDADAM_CPU_ISA.
#pragma once

#include <cstdint>
#include <vector>

#include "../tensor_table.h"

// The x86 variants need GCC's `#pragma GCC target`; any other compiler or CPU builds the default one only.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FUSEDADAM_CPU_X86_VARIANTS 1
#else
#define FUSEDADAM_CPU_X86_VARIANTS 0
#endif

namespace fusedadam::cpu {

// What a step needs per tensor besides its arrays, computed once on the host before any variant runs.
struct StepConstants {
  std::vector<AdamCoefficients<float>> float_coefficients;    // fp32 math (fp32 and 16-bit storage)
  std::vector<AdamCoefficients<double>> double_coefficients;  // fp64 math (fp64 storage)
  std::vector<uint32_t> rounding_keys;                        // stochastic rounding's stream per tensor, else 0

  template <typename Opmath>
  const AdamCoefficients<Opmath>* coefficients() const {
    if constexpr (sizeof(Opmath) == sizeof(double)) {
      return double_coefficients.data();
    } else {
      return float_coefficients.data();
    }
  }
};

using AdamStepKernel = void (*)(const TensorTable& table, const StepConstants& constants,
                                const AdamHyperparameters& hp, int max_threads);

namespace isa_default {
void adam_step(const TensorTable&, const StepConstants&, const AdamHyperparameters&, int max_threads);
}
#if FUSEDADAM_CPU_X86_VARIANTS
namespace isa_x86_64_v3 {
void adam_step(const TensorTable&, const StepConstants&, const AdamHyperparameters&, int max_threads);
}
namespace isa_avx512_bf16 {
void adam_step(const TensorTable&, const StepConstants&, const AdamHyperparameters&, int max_threads);
}
#endif

}  // namespace fusedadam::cpu
