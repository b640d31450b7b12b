// The CPU kernels for x86-64-v3 (AVX2, FMA, F16C: every x86-64 CPU since 2013-2015, and the choice on AVX-512 CPUs
// without AVX512-BF16, where 512-bit vectors gain nothing on Adam's divisions and square roots: bench/NOTES.md).
#include "cpu_isa.h"
#if FUSEDADAM_CPU_X86_VARIANTS
#define FUSEDADAM_CPU_ISA isa_x86_64_v3
#define FUSEDADAM_CPU_TARGET \
  _Pragma("GCC target(\"sse3,ssse3,sse4.1,sse4.2,popcnt,avx,avx2,bmi,bmi2,f16c,fma,lzcnt,movbe\")")
#define FUSEDADAM_CPU_F16C 1
#define FUSEDADAM_CPU_FMA 1
#include "adam_span.h"
#endif
