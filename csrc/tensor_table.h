// The plain description of one multi-tensor step that every kernel consumes: no Python, no torch.
//
// One TensorTable covers the tensors of one (device, dtype) group. Every tensor of the table has the
// same storage dtype; its p, g, m, v (and vmax) are dense and share one memory layout, so the kernels
// can treat each as a flat array of `numel` elements.
#pragma once

#include <cstdint>
#include <vector>

#include "adam_math.h"

namespace fusedadam {

// Codes shared with fusedadam/backends/native_table.py (DTYPE_CODES).
enum class DType : int { kFloat32 = 0, kFloat64 = 1, kFloat16 = 2, kBFloat16 = 3 };

struct TensorSlot {
  void* param;
  const void* grad;
  void* exp_avg;
  void* exp_avg_sq;
  void* max_exp_avg_sq;  // nullptr unless amsgrad
  float* step;           // torch keeps the step counter as a float32 0-dim tensor
  int64_t numel;
};

struct TensorTable {
  DType dtype = DType::kFloat32;
  std::vector<TensorSlot> tensors;
  std::vector<int64_t> first_element;  // prefix sum of numel: tensor i spans [first_element[i], first_element[i+1])

  int64_t total_numel() const { return first_element.empty() ? 0 : first_element.back(); }
};

struct AdamHyperparameters {
  double lr;
  double beta1;
  double beta2;
  double eps;
  double weight_decay;
  WeightDecay weight_decay_mode;
  bool amsgrad;
  bool maximize;
};

}  // namespace fusedadam
