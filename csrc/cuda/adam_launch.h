// The Adam kernel of one storage combination (adam_modes.h Precision), every mode: launched on a GPU or played on the
// host. Declared here, defined in adam_launch.cuh and instantiated per combination in the adam_cuda_*.cu files, which
// nvcc compiles side by side.
#pragma once

#include "../adam_modes.h"
#include "adam_cuda.h"
#include "adam_kernel.cuh"

namespace fusedadam::cuda {

template <typename Precision>
void launch_precision(const AdamLaunchParams& params, const AdamKernelArgs& args);

template <typename Precision>
ExecutionTally play_precision_on_host(const AdamLaunchParams& params, const AdamKernelArgs& args, const HostGrid& grid);

}  // namespace fusedadam::cuda
