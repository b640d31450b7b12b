// Kernels of fp32 and fp16 parameters with 8-bit moments (adam_kernel_8bit.cuh, adam_launch.cuh).
#include "adam_launch.cuh"

FUSEDADAM_INSTANTIATE_PRECISION(kFloat32, kMoment8Bit, kRoundToNearest)
FUSEDADAM_INSTANTIATE_PRECISION(kFloat16, kMoment8Bit, kRoundToNearest)
FUSEDADAM_INSTANTIATE_PRECISION(kFloat16, kMoment8Bit, kMasterWeights)
