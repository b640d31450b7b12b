#include "bandwidth_probe.h"

#include "multi_tensor_cpu.h"
#include "simd_targets.h"

namespace fusedadam::cpu {
namespace {

FUSEDADAM_SIMD_CLONES void probe_span(uint32_t* __restrict a, uint32_t* __restrict b, uint32_t* __restrict c,
                                      const uint32_t* __restrict d, int64_t n) {
  // xor with d: every array is really read and a, b, c really change, yet nothing is computed.
#pragma GCC ivdep
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t x = d[i];
    a[i] ^= x;
    b[i] ^= x;
    c[i] ^= x;
  }
}

}  // namespace

void bandwidth_probe(uint32_t* a, uint32_t* b, uint32_t* c, const uint32_t* d, int64_t words, int max_threads) {
  // One pseudo-tensor in a table, so the probe slices work across threads exactly as adam_step does.
  TensorTable table;
  table.first_element = {0, words};
  table.tensors.resize(1);
  parallel_for_each_span(table, max_threads, 1, [&](int64_t, int64_t begin, int64_t end) {
    probe_span(a + begin, b + begin, c + begin, d + begin, end - begin);
  });
}

}  // namespace fusedadam::cpu
