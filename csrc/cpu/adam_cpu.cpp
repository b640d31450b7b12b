// The CPU Adam step: picks the kernel of the table's storage combination. The round-to-nearest ones are
// instantiated here, the master-weight, stochastic-rounding and Kahan ones in adam_cpu_param_updates.cpp.
#include "adam_cpu.h"

#include "adam_cpu_f16c.h"
#include "adam_span.h"

namespace fusedadam::cpu {

void adam_step(const TensorTable& table, const AdamHyperparameters& hp, int max_threads) {
  if (table.param_update != ParamUpdate::kRoundToNearest) return adam_step_param_updates(table, hp, max_threads);
  dispatch_precision(table.param_dtype, table.state_dtype, table.param_update, [&](auto precision) {
    using P = decltype(precision);
    if constexpr (P::update == ParamUpdate::kRoundToNearest) {
      if constexpr (P::param == DType::kFloat16 && P::state == DType::kFloat16) {
        static const bool f16c = f16c_supported();
        if (f16c) return adam_step_f16c(table, advance_steps<float>(table, hp), hp, max_threads);
      }
      step_precision<P>(table, hp, max_threads);
    }
  });
}

const char* compiled_isas() { return FUSEDADAM_SIMD_ISAS; }

const char* selected_isa() {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("x86-64-v4")) return "x86-64-v4";
  if (__builtin_cpu_supports("x86-64-v3")) return "x86-64-v3";
#endif
  return "default";
}

}  // namespace fusedadam::cpu
