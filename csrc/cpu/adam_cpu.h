#pragma once

#include "../tensor_table.h"

namespace fusedadam::cpu {

// One Adam step over every tensor of the table: increments each tensor's step counter, then updates
// p, m, v (and vmax) in place. One OpenMP region of at most `max_threads` threads.
void adam_step(const TensorTable& table, const AdamHyperparameters& hp, int max_threads);

// adam_step for the tables whose param_update is not kRoundToNearest.
void adam_step_param_updates(const TensorTable& table, const AdamHyperparameters& hp, int max_threads);

// The SIMD target the CPU kernels dispatch to on this machine ("x86-64-v4", "x86-64-v3" or "default").
const char* selected_isa();

// The ISA variants compiled into the CPU kernels.
const char* compiled_isas();

}  // namespace fusedadam::cpu
