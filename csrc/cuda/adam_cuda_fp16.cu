// Kernels of fp16 parameters (adam_launch.cuh).
#include "adam_launch.cuh"

FUSEDADAM_INSTANTIATE_PRECISION(kFloat16, kFloat16, kRoundToNearest)
FUSEDADAM_INSTANTIATE_PRECISION(kFloat16, kFloat32, kRoundToNearest)
FUSEDADAM_INSTANTIATE_PRECISION(kFloat16, kBFloat16, kRoundToNearest)
FUSEDADAM_INSTANTIATE_PRECISION(kFloat16, kFloat32, kMasterWeights)
FUSEDADAM_INSTANTIATE_PRECISION(kFloat16, kBFloat16, kMasterWeights)
