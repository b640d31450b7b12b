// An fp32 value's bits and back, on the host and the device (memcpy compiles to a register move).
#pragma once

#include <cstdint>
#include <cstring>

#include "adam_math.h"  // FUSEDADAM_HOST_DEVICE

namespace fusedadam {

FUSEDADAM_HOST_DEVICE uint32_t float_bits(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return bits;
}

FUSEDADAM_HOST_DEVICE float float_of_bits(uint32_t bits) {
  float x;
  std::memcpy(&x, &bits, sizeof x);
  return x;
}

}  // namespace fusedadam
