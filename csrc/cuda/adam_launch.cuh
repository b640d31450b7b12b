// Definitions of adam_launch.h: the step's modes become template arguments once per launch.
#pragma once

#include <cuda_runtime.h>

#include <type_traits>

#include "adam_kernel_8bit.cuh"
#include "adam_launch.h"
#include "persistent_launch.cuh"

namespace fusedadam::cuda {

// The kernel of a storage combination: 8-bit moments have their own (adam_kernel_8bit.cuh).
template <typename Precision, WeightDecay kWeightDecay, bool kAmsgrad, bool kMaximize>
using KernelOf = std::conditional_t<Precision::state == DType::kMoment8Bit,
                                    EightBitAdamKernel<Precision, kWeightDecay, kAmsgrad, kMaximize>,
                                    AdamKernel<Precision, kWeightDecay, kAmsgrad, kMaximize>>;

template <typename Precision, typename Fn>
void with_kernel(const AdamLaunchParams& params, Fn&& fn) {
  dispatch_adam_mode(params.weight_decay_mode, params.amsgrad, params.maximize,
                     [&](auto weight_decay, auto amsgrad, auto maximize) {
                       fn(KernelOf<Precision, decltype(weight_decay)::value, decltype(amsgrad)::value,
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
