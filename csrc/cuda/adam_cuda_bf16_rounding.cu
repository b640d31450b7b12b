// Kernels of bf16 parameters with stochastic rounding or Kahan summation (adam_launch.cuh).
#include "adam_launch.cuh"

FUSEDADAM_INSTANTIATE_PRECISION(kBFloat16, kBFloat16, kStochasticRounding)
FUSEDADAM_INSTANTIATE_PRECISION(kBFloat16, kFloat32, kStochasticRounding)
FUSEDADAM_INSTANTIATE_PRECISION(kBFloat16, kBFloat16, kKahanSummation)
FUSEDADAM_INSTANTIATE_PRECISION(kBFloat16, kFloat32, kKahanSummation)
