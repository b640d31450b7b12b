// The entry points of adam_cuda.h: the step's storage combination picked once (adam_modes.h), then its kernel
// launched on the GPU or played on the host.
#include "adam_cuda.h"

#include <stdexcept>

#include "../adam_modes.h"
#include "../moment_quantization.h"
#include "adam_launch.h"
#include "cuda_check.h"

namespace fusedadam::cuda {
namespace {

AdamKernelArgs kernel_args(const AdamLaunchParams& p) {
  if (p.chunk_size <= 0 || p.chunk_size % 64 != 0) throw std::invalid_argument("chunk_size must be a positive multiple of 64");
  // A block of 8-bit moments shares its absmax, so it must lie in one chunk, which one warp steps.
  if (p.state_dtype == DType::kMoment8Bit && p.chunk_size % quantization::kBlock != 0) {
    throw std::invalid_argument("with 8-bit moments chunk_size must be a multiple of 256, the quantization block");
  }
  return AdamKernelArgs{LaunchTable{p.table, p.num_tensors, p.num_chunks, p.chunk_size},
                        p.steps, p.done_counter, p.lr, p.beta1, p.beta2, p.eps, p.weight_decay, p.lr_on_device,
                        p.beta1_on_device, p.beta2_on_device, p.seed, p.grad_scale, p.found_inf};
}

}  // namespace

void adam_step(const AdamLaunchParams& p) {
  const AdamKernelArgs args = kernel_args(p);
  DeviceGuard guard(p.device);
  dispatch_precision(p.dtype, p.state_dtype, p.param_update,
                     [&](auto precision) { launch_precision<decltype(precision)>(p, args); });
}

ExecutionTally adam_step_on_host(const AdamLaunchParams& p, const HostGrid& grid) {
  const AdamKernelArgs args = kernel_args(p);
  if (grid.sms < 1 || grid.blocks_per_sm < 1) throw std::invalid_argument("the host grid needs sms >= 1 and blocks_per_sm >= 1");
  ExecutionTally tally;
  dispatch_precision(p.dtype, p.state_dtype, p.param_update,
                     [&](auto precision) { tally = play_precision_on_host<decltype(precision)>(p, args, grid); });
  return tally;
}

}  // namespace fusedadam::cuda
