// The plain description of one multi-tensor step that every kernel consumes: no Python, no torch.
//
// One TensorTable covers the tensors of one (device, dtype) group. Every parameter (and gradient) of the table
// has the dtype `param_dtype`, every moment (m, v, vmax) `state_dtype`; p, g, m, v (and vmax, master,
// compensation) are dense and share one memory layout, so the kernels can treat each as a flat array of
// `numel` elements.
#pragma once

#include <cstdint>
#include <vector>

#include "adam_math.h"
#include "param_update.h"

namespace fusedadam {

// Codes shared with fusedadam/backends/native_table.py (DTYPE_CODES). kMoment8Bit is a state dtype only: each moment
// is one byte per element on the map of moment_quantization.h, with one fp32 absmax per block of its tensor.
enum class DType : int { kFloat32 = 0, kFloat64 = 1, kFloat16 = 2, kBFloat16 = 3, kMoment8Bit = 4 };

struct TensorSlot {
  void* param;
  const void* grad;
  void* exp_avg;
  void* exp_avg_sq;
  void* max_exp_avg_sq;  // nullptr unless amsgrad
  void* step;            // the step counter: a float32 0-dim tensor (float64 where torch makes it so, step_is_double)
  int64_t numel;
  float* master;         // fp32 master copy, nullptr unless ParamUpdate::kMasterWeights
  void* compensation;    // bf16 Kahan buffer, nullptr unless ParamUpdate::kKahanSummation
  uint32_t salt;         // the parameter's index in the optimizer: its stream of rounding bits
  // With 8-bit moments (DType::kMoment8Bit), each moment's absmax per block of quantization::kBlock elements, counted
  // from the tensor's first element in memory order; nullptr otherwise (and max_exp_avg_sq's unless amsgrad).
  float* exp_avg_absmax = nullptr;
  float* exp_avg_sq_absmax = nullptr;
  float* max_exp_avg_sq_absmax = nullptr;
};

struct TensorTable {
  DType param_dtype = DType::kFloat32;
  DType state_dtype = DType::kFloat32;
  ParamUpdate param_update = ParamUpdate::kRoundToNearest;
  // torch keeps step counters in float32, or in float64 under torch.set_default_dtype(torch.float64) (CPU backends).
  bool step_is_double = false;
  std::vector<TensorSlot> tensors;
  std::vector<int64_t> first_element;  // prefix sum of numel: tensor i spans [first_element[i], first_element[i+1])

  bool quantized() const { return state_dtype == DType::kMoment8Bit; }
  int64_t total_numel() const { return first_element.empty() ? 0 : first_element.back(); }

  // Adds one to tensor i's counter, in the counter's own dtype as torch does (float32 arithmetic for a float32 one),
  // and returns the new count.
  double advance_step(size_t i) const {
    if (step_is_double) return *static_cast<double*>(tensors[i].step) += 1.0;
    return *static_cast<float*>(tensors[i].step) += 1.0f;
  }
  double step_of(size_t i) const {
    return step_is_double ? *static_cast<const double*>(tensors[i].step) : *static_cast<const float*>(tensors[i].step);
  }
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
  uint64_t seed;  // of stochastic rounding
};

}  // namespace fusedadam
