// The multi-tensor Adam step on the GPU: one launch over a launch table (csrc/launch_table.h).
#pragma once

#include <cstdint>

#include "../tensor_table.h"

namespace fusedadam::cuda {

struct AdamLaunchParams {
  int device;
  uintptr_t stream;          // cudaStream_t of that device (torch's current stream)
  const int64_t* table;      // device memory
  int64_t num_tensors;
  int64_t num_chunks;
  int64_t chunk_size;        // a multiple of 64 elements
  DType dtype;                 // of the parameters and gradients
  DType state_dtype;           // of exp_avg, exp_avg_sq, max_exp_avg_sq
  ParamUpdate param_update;    // param_update.h
  float* steps;              // device, one float32 counter per tensor, advanced by the kernel
  unsigned int* done_counter;  // device, zero between launches
  double lr;
  const float* lr_on_device;   // when set, read instead of lr (capturable / tensor lr)
  double beta1, beta2, eps, weight_decay;
  WeightDecay weight_decay_mode;
  bool amsgrad;
  bool maximize;
  uint64_t seed;               // of stochastic rounding
  const float* grad_scale;     // GradScaler: gradients are divided by it (and written back), or nullptr
  const float* found_inf;      // GradScaler: when non-zero the whole step is skipped, or nullptr
};

// Queues the step on the stream; throws std::runtime_error with CUDA's error text on failure.
void adam_step(const AdamLaunchParams& params);

}  // namespace fusedadam::cuda
