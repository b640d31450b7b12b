// Kernels of fp32 and fp64 parameters (adam_launch.cuh); the other storage combinations compile beside it.
#include "adam_launch.cuh"

FUSEDADAM_INSTANTIATE_PRECISION(kFloat32, kFloat32, kRoundToNearest)
FUSEDADAM_INSTANTIATE_PRECISION(kFloat32, kBFloat16, kRoundToNearest)
FUSEDADAM_INSTANTIATE_PRECISION(kFloat64, kFloat64, kRoundToNearest)
