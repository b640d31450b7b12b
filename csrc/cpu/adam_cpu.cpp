// The CPU Adam step: the per-tensor constants on the host, then the kernel of the ISA variant picked for this CPU
// (cpu_isa.h).
#include "adam_cpu.h"

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "cpu_isa.h"
#include "storage_cast.h"

namespace fusedadam::cpu {
namespace {

#if FUSEDADAM_CPU_X86_VARIANTS
bool has_avx512_bf16() { return __builtin_cpu_supports("x86-64-v4") && __builtin_cpu_supports("avx512bf16"); }
bool has_x86_64_v3() { return __builtin_cpu_supports("x86-64-v3"); }
#endif
bool always() { return true; }

struct IsaVariant {
  const char* name;
  const char* description;
  bool (*supported)();
  AdamStepKernel kernel;
};

// Best first: the first one this CPU supports is the default.
const IsaVariant kVariants[] = {
#if FUSEDADAM_CPU_X86_VARIANTS
    {"avx512-bf16", "x86-64-v4 + AVX512-BF16", has_avx512_bf16, isa_avx512_bf16::adam_step},
    {"x86-64-v3", "AVX2, FMA, F16C", has_x86_64_v3, isa_x86_64_v3::adam_step},
#endif
    {"default", "the build's target: SSE2 on x86-64", always, isa_default::adam_step},
};

std::string variant_names() {
  std::string names;
  for (const auto& v : kVariants) names += (names.empty() ? "" : ", ") + std::string(v.name);
  return names;
}

// FUSEDADAM_CPU_ISA=<name> forces a variant (the tests step with each this CPU runs); it must be one this CPU runs.
// Read at every step, not cached: a getenv and at most three string compares, against a step's microseconds.
const IsaVariant& selected_variant() {
#if FUSEDADAM_CPU_X86_VARIANTS
  __builtin_cpu_init();
#endif
  const char* forced = std::getenv("FUSEDADAM_CPU_ISA");
  for (const auto& v : kVariants) {
    if (forced != nullptr && forced[0] != '\0') {
      if (std::string(forced) != v.name) continue;
      if (!v.supported()) {
        throw std::invalid_argument("FUSEDADAM_CPU_ISA=" + std::string(forced) + ": this CPU lacks " + v.description +
                                    "; unset it, or name another of: " + variant_names());
      }
      return v;
    }
    if (v.supported()) return v;
  }
  throw std::invalid_argument("FUSEDADAM_CPU_ISA=" + std::string(forced) + " names no CPU kernel variant; unset it, or "
                              "name one of: " + variant_names());
}


// Increments every step counter (in float32, as torch does) and computes each tensor's constants.
// Tensors of one group nearly always share a step, so pow() runs once, not once per tensor.
template <typename Opmath>
std::vector<AdamCoefficients<Opmath>> advance_steps(const TensorTable& table, const AdamHyperparameters& hp) {
  std::vector<AdamCoefficients<Opmath>> coefficients(table.tensors.size());
  double previous_step = -1.0;
  AdamCoefficients<Opmath> previous{};
  for (size_t i = 0; i < table.tensors.size(); ++i) {
    const double step = table.advance_step(i);
    if (step != previous_step) {
      previous = make_adam_coefficients<Opmath>(hp.lr, hp.beta1, hp.beta2, hp.eps, hp.weight_decay, step);
      previous_step = step;
    }
    coefficients[i] = previous;
  }
  return coefficients;
}

// Each tensor's stream of rounding bits for this step (stochastic rounding only).
std::vector<uint32_t> rounding_keys(const TensorTable& table, const AdamHyperparameters& hp) {
  std::vector<uint32_t> keys(table.tensors.size(), 0u);
  if (table.param_update != ParamUpdate::kStochasticRounding) return keys;
  for (size_t i = 0; i < keys.size(); ++i) {
    const auto& t = table.tensors[i];
    keys[i] = rounding_key(hp.seed, t.salt, static_cast<uint32_t>(table.step_of(i)));  // the step already advanced
  }
  return keys;
}

}  // namespace

void adam_step(const TensorTable& table, const AdamHyperparameters& hp, int max_threads) {
  const AdamStepKernel kernel = selected_variant().kernel;  // throws before any step counter moves
  StepConstants constants;
  if (table.param_dtype == DType::kFloat64) {
    constants.double_coefficients = advance_steps<double>(table, hp);
  } else {
    constants.float_coefficients = advance_steps<float>(table, hp);
  }
  constants.rounding_keys = rounding_keys(table, hp);
  kernel(table, constants, hp, max_threads);
}

const char* compiled_isas() {
  static const std::string list = [] {
    std::string text;
    for (const auto& v : kVariants) text += (text.empty() ? "" : ", ") + std::string(v.name) + " (" + v.description + ")";
    return text;
  }();
  return list.c_str();
}

std::vector<std::string> runnable_isas() {
#if FUSEDADAM_CPU_X86_VARIANTS
  __builtin_cpu_init();
#endif
  std::vector<std::string> names;
  for (const auto& v : kVariants) {
    if (v.supported()) names.emplace_back(v.name);
  }
  return names;
}

const char* selected_isa() { return selected_variant().name; }

}  // namespace fusedadam::cpu
