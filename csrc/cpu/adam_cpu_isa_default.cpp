// The CPU kernels for the build's own target: SSE2 on x86-64 (portable 16-bit conversions), whatever the compiler
// targets elsewhere. The fallback on any CPU, and FUSEDADAM_CPU_ISA=default.
#define FUSEDADAM_CPU_ISA isa_default
#define FUSEDADAM_CPU_TARGET
#include "adam_span.h"
