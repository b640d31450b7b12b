// ISA clones for the bandwidth probe: GCC builds each function marked FUSEDADAM_SIMD_CLONES once per target and picks
// one at load time from cpuid. (The Adam kernel needs intrinsics, which target_clones cannot use: it is compiled once
// per variant instead, cpu_isa.h.)
#pragma once

#if defined(__x86_64__) && defined(__GNUC__)
#define FUSEDADAM_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FUSEDADAM_SIMD_CLONES
#endif
