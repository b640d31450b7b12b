#pragma once

#include <cstdint>

namespace fusedadam::cpu {

// The memory ceiling with Adam's access pattern: 4 arrays read, 3 of them written back in place, no
// math (a plain copy into a fresh buffer would pay a hidden read-for-ownership and understate it).
// Same thread slicing as the Adam kernel. Each array holds `words` 32-bit words.
void bandwidth_probe(uint32_t* a, uint32_t* b, uint32_t* c, const uint32_t* d, int64_t words, int max_threads);

}  // namespace fusedadam::cpu
