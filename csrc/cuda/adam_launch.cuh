// Definitions of adam_launch.h: the step's modes become template arguments once per launch.
#pragma once

#include <cuda_runtime.h>

#include "adam_launch.h"
#include "persistent_launch.cuh"

namespace fusedadam::cuda {

template <typename Precision, typename Fn>
void with_kernel(const AdamLaunchParams& params, Fn&& fn) {
  dispatch_adam_mode(params.weight_decay_mode, params.amsgrad, params.maximize,
                     [&](auto weight_decay, auto amsgrad, auto maximize) {
                       fn(AdamKernel<Precision, decltype(weight_decay)::value, decltype(amsgrad)::value,
                                     decltype(maximize)::value>{});
                     });
}

template <typename Precision>
void launch_precision(const AdamLaunchParams& params, const AdamKernelArgs& args) {
  with_kernel<Precision>(params, [&](auto kernel) {
    launch_on_device<decltype(kernel)>(args, params.num_chunks, params.device,
                                       reinterpret_cast<cudaStream_t>(params.stream));
  });
}

template <typename Precision>
ExecutionTally play_precision_on_host(const AdamLaunchParams& params, const AdamKernelArgs& args,
                                      const HostGrid& grid) {
  ExecutionTally tally;
  with_kernel<Precision>(params, [&](auto kernel) {
    tally = play_on_host<decltype(kernel)>(args, params.num_chunks, grid);
  });
  return tally;
}

}  // namespace fusedadam::cuda

// Instantiates both for one storage combination: FUSEDADAM_INSTANTIATE_PRECISION(kFloat32, kFloat32, kRoundToNearest).
#define FUSEDADAM_INSTANTIATE_PRECISION(PARAM, STATE, UPDATE)                                                        \
  template void fusedadam::cuda::launch_precision<                                                                  \
      fusedadam::Precision<fusedadam::DType::PARAM, fusedadam::DType::STATE, fusedadam::ParamUpdate::UPDATE>>(       \
      const fusedadam::cuda::AdamLaunchParams&, const fusedadam::cuda::AdamKernelArgs&);                                                              \
  template fusedadam::cuda::ExecutionTally fusedadam::cuda::play_precision_on_host<                                 \
      fusedadam::Precision<fusedadam::DType::PARAM, fusedadam::DType::STATE, fusedadam::ParamUpdate::UPDATE>>(       \
      const fusedadam::cuda::AdamLaunchParams&, const fusedadam::cuda::AdamKernelArgs&,                           \
      const fusedadam::cuda::HostGrid&);
