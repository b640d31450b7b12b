#pragma once

#include <vector>

#include "../tensor_table.h"

namespace fusedadam::cpu {

// True where this CPU has F16C (with AVX2 and FMA, i.e. the x86-64-v3 level the fast path is built for).
bool f16c_supported();

// adam_step for fp16 storage through F16C; the step counters were already advanced into `coefficients`.
void adam_step_f16c(const TensorTable& table, const std::vector<AdamCoefficients<float>>& coefficients,
                    const AdamHyperparameters& hp, int max_threads);

}  // namespace fusedadam::cpu
