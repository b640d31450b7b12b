#pragma once

#include <string>
#include <vector>

#include "../tensor_table.h"

namespace fusedadam::cpu {

// One Adam step over every tensor of the table: increments each tensor's step counter, then updates
// p, m, v (and vmax) in place. One OpenMP region of at most `max_threads` threads.
void adam_step(const TensorTable& table, const AdamHyperparameters& hp, int max_threads);

// The ISA variant the CPU kernel runs on this machine: "avx512-bf16", "x86-64-v3" or "default" (cpu_isa.h), or the
// one FUSEDADAM_CPU_ISA names. Throws std::invalid_argument if that names none this CPU runs.
const char* selected_isa();

// The ISA variants compiled into the CPU kernel, with what each needs.
const char* compiled_isas();

// The names of the compiled variants this CPU can run, best first: the values FUSEDADAM_CPU_ISA may take here.
std::vector<std::string> runnable_isas();

}  // namespace fusedadam::cpu
