// The CPU kernels for x86-64-v4 with AVX512-BF16 (Intel Cooper Lake, Sapphire Rapids and later; AMD Zen 4 and
// later): 512-bit vectors, and bf16 rounded by vcvtne2ps2bf16 instead of ~8 integer operations per vector.
#include "cpu_isa.h"
#if FUSEDADAM_CPU_X86_VARIANTS
#define FUSEDADAM_CPU_ISA isa_avx512_bf16
#define FUSEDADAM_CPU_TARGET \
  _Pragma("GCC target(\"sse3,ssse3,sse4.1,sse4.2,popcnt,avx,avx2,bmi,bmi2,f16c,fma,lzcnt,movbe,avx512f,avx512bw,avx512cd,avx512dq,avx512vl,avx512bf16,prefer-vector-width=512\")")
#define FUSEDADAM_CPU_F16C 1
#define FUSEDADAM_CPU_FMA 1
#define FUSEDADAM_CPU_AVX512 1
#define FUSEDADAM_CPU_AVX512_BF16 1
// GCC 12 reports the AVX-512 conversion intrinsics' own _mm512_undefined_*() placeholders as "maybe
// uninitialized", once per instantiation: a false positive inside its headers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "adam_span.h"
#endif
