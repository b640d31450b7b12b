// Kernels of bf16 parameters with 8-bit moments, every parameter update (adam_kernel_8bit.cuh, adam_launch.cuh).
#include "adam_launch.cuh"

FUSEDADAM_INSTANTIATE_PRECISION(kBFloat16, kMoment8Bit, kRoundToNearest)
FUSEDADAM_INSTANTIATE_PRECISION(kBFloat16, kMoment8Bit, kMasterWeights)
FUSEDADAM_INSTANTIATE_PRECISION(kBFloat16, kMoment8Bit, kStochasticRounding)
FUSEDADAM_INSTANTIATE_PRECISION(kBFloat16, kMoment8Bit, kKahanSummation)
