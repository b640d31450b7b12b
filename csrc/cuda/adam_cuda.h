// The multi-tensor Adam step of the CUDA kernel: one launch over a launch table (csrc/launch_table.h) on a GPU, or the
// same kernel code played block by block and thread by thread on the host (a testing tool: backend "cuda-host").
#pragma once

#include <cstdint>

#include "../tensor_table.h"
#include "execution.cuh"
#include "persistent_launch.cuh"

namespace fusedadam::cuda {

struct AdamLaunchParams {
  int device;
  uintptr_t stream;            // cudaStream_t of that device (torch's current stream)
  const int64_t* table;        // launch table, in the memory the kernel runs on
  int64_t num_tensors;
  int64_t num_chunks;
  int64_t chunk_size;          // a multiple of 64 elements
  DType dtype;                 // of the parameters and gradients
  DType state_dtype;           // of exp_avg, exp_avg_sq, max_exp_avg_sq
  ParamUpdate param_update;    // param_update.h
  float* steps;                // one float32 counter per tensor, advanced by the kernel
  unsigned int* done_counter;  // zero between launches
  double lr;
  const float* lr_on_device;     // when set, read instead of lr (capturable / tensor lr)
  double beta1, beta2;
  const float* beta1_on_device;  // when set, read instead of beta1 / beta2 (tensor betas)
  const float* beta2_on_device;
  double eps, weight_decay;
  WeightDecay weight_decay_mode;
  bool amsgrad;
  bool maximize;
  uint64_t seed;               // of stochastic rounding
  const float* grad_scale;     // GradScaler: gradients are divided by it (and written back), or nullptr
  const float* found_inf;      // GradScaler: when non-zero the whole step is skipped, or nullptr
};

// Queues the step on the stream; throws std::runtime_error with CUDA's error text on failure.
void adam_step(const AdamLaunchParams& params);

// Runs the step's kernel on the host, over host memory: every block of the grid a GPU with `grid.sms` SMs holding
// `grid.blocks_per_sm` blocks would get, in a shuffled order, every thread of each. Returns what it counted.
ExecutionTally adam_step_on_host(const AdamLaunchParams& params, const HostGrid& grid);

}  // namespace fusedadam::cuda
