// Kernels of bf16 parameters rounded to nearest or with master weights (adam_launch.cuh).
#include "adam_launch.cuh"

FUSEDADAM_INSTANTIATE_PRECISION(kBFloat16, kBFloat16, kRoundToNearest)
FUSEDADAM_INSTANTIATE_PRECISION(kBFloat16, kFloat32, kRoundToNearest)
FUSEDADAM_INSTANTIATE_PRECISION(kBFloat16, kFloat32, kMasterWeights)
FUSEDADAM_INSTANTIATE_PRECISION(kBFloat16, kBFloat16, kMasterWeights)
