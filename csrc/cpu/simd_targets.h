// One place that names the ISA variants of every CPU kernel: GCC builds each function marked
// FUSEDADAM_SIMD_CLONES once per target and picks one at load time from cpuid.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__)
#define FUSEDADAM_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define FUSEDADAM_SIMD_ISAS "x86-64-v4 (AVX-512), x86-64-v3 (AVX2+FMA), default (SSE2)"
#else
#define FUSEDADAM_SIMD_CLONES
#define FUSEDADAM_SIMD_ISAS "default (compiler auto-vectorization for the build target)"
#endif
