// The CPU kernels of the combinations that do more than round the parameter to nearest: master weights,
// stochastic rounding and Kahan summation (param_update.h). A translation unit of their own, so the build
// compiles them beside adam_cpu.cpp.
#include "adam_cpu.h"
#include "adam_span.h"

namespace fusedadam::cpu {

void adam_step_param_updates(const TensorTable& table, const AdamHyperparameters& hp, int max_threads) {
  dispatch_precision(table.param_dtype, table.state_dtype, table.param_update, [&](auto precision) {
    using P = decltype(precision);
    if constexpr (P::update != ParamUpdate::kRoundToNearest) step_precision<P>(table, hp, max_threads);
  });
}

}  // namespace fusedadam::cpu
