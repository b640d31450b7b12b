// The Adam functor over the multi-tensor machinery: storage-dtype loads and stores (16 bytes per access
// where every array is aligned) around the shared per-element math of csrc/adam_math.h.
#include "adam_cuda.h"

#include <stdexcept>

#include "../adam_math.h"
#include "../adam_modes.h"
#include "../launch_table.h"
#include "cuda_check.h"
#include "multi_tensor_apply.cuh"
#include "storage_access.cuh"

namespace fusedadam::cuda {
namespace {

constexpr int kThreads = 256;

struct AdamKernelArgs {
  LaunchTable table;
  float* steps;
  unsigned int* done_counter;
  double lr;
  const float* lr_on_device;
  double beta1, beta2, eps, weight_decay;
  const float* grad_scale;
  const float* found_inf;
};

template <typename Storage>
struct Arrays {
  Storage* param;
  Storage* grad;
  Storage* exp_avg;
  Storage* exp_avg_sq;
  Storage* max_exp_avg_sq;
};

template <typename Storage>
__device__ __forceinline__ Arrays<Storage> arrays_of(const int64_t* row) {
  using namespace launch_table;
  auto at = [row](int column) { return reinterpret_cast<Storage*>(static_cast<uintptr_t>(__ldg(row + column))); };
  return {at(kParam), at(kGrad), at(kExpAvg), at(kExpAvgSq), at(kMaxExpAvgSq)};
}

// One element in registers: unscale (GradScaler), update, nothing else.
template <WeightDecay kWeightDecay, bool kAmsgrad, bool kMaximize, typename Opmath>
__device__ __forceinline__ void update_element(Opmath& p, Opmath& g, Opmath& m, Opmath& v, Opmath& vmax,
                                               const Opmath* grad_scale, const AdamCoefficients<Opmath>& c) {
  if (grad_scale != nullptr) g = g / *grad_scale;  // the unscaled gradient is also written back, as torch does
  adam_update<kWeightDecay, kAmsgrad, kMaximize>(p, g, m, v, vmax, c);
}

template <typename Storage, WeightDecay kWeightDecay, bool kAmsgrad, bool kMaximize>
__device__ __forceinline__ void adam_chunk(const Arrays<Storage>& a, int64_t first, int64_t end, bool write_grad,
                                           const opmath_t<Storage>* grad_scale,
                                           const AdamCoefficients<opmath_t<Storage>>& c) {
  using Opmath = opmath_t<Storage>;
  constexpr int kVec = Vector<Storage>::kSize;
  int64_t scalar_begin = first;
  // Chunk starts are multiples of 64 elements, so aligned arrays stay aligned at every vector.
  if (aligned16(a.param) && aligned16(a.grad) && aligned16(a.exp_avg) && aligned16(a.exp_avg_sq) &&
      (!kAmsgrad || aligned16(a.max_exp_avg_sq))) {
    const int64_t vector_end = first + (end - first) / kVec * kVec;
    for (int64_t i = first + static_cast<int64_t>(threadIdx.x) * kVec; i < vector_end;
         i += static_cast<int64_t>(blockDim.x) * kVec) {
      Vector<Storage> p = load_vector(a.param + i), g = load_vector(a.grad + i), m = load_vector(a.exp_avg + i),
                      v = load_vector(a.exp_avg_sq + i), vmax;
      if (kAmsgrad) vmax = load_vector(a.max_exp_avg_sq + i);
#pragma unroll
      for (int k = 0; k < kVec; ++k) {
        Opmath pk = to_opmath(p.values[k]), gk = to_opmath(g.values[k]), mk = to_opmath(m.values[k]),
               vk = to_opmath(v.values[k]), vmaxk = kAmsgrad ? to_opmath(vmax.values[k]) : Opmath(0);
        update_element<kWeightDecay, kAmsgrad, kMaximize>(pk, gk, mk, vk, vmaxk, grad_scale, c);
        p.values[k] = from_opmath<Storage>(pk);
        g.values[k] = from_opmath<Storage>(gk);
        m.values[k] = from_opmath<Storage>(mk);
        v.values[k] = from_opmath<Storage>(vk);
        if (kAmsgrad) vmax.values[k] = from_opmath<Storage>(vmaxk);
      }
      store_vector(a.param + i, p);
      if (write_grad) store_vector(a.grad + i, g);
      store_vector(a.exp_avg + i, m);
      store_vector(a.exp_avg_sq + i, v);
      if (kAmsgrad) store_vector(a.max_exp_avg_sq + i, vmax);
    }
    scalar_begin = vector_end;
  }
  for (int64_t i = scalar_begin + threadIdx.x; i < end; i += blockDim.x) {
    Opmath p = to_opmath(a.param[i]), g = to_opmath(a.grad[i]), m = to_opmath(a.exp_avg[i]),
           v = to_opmath(a.exp_avg_sq[i]), vmax = kAmsgrad ? to_opmath(a.max_exp_avg_sq[i]) : Opmath(0);
    update_element<kWeightDecay, kAmsgrad, kMaximize>(p, g, m, v, vmax, grad_scale, c);
    a.param[i] = from_opmath<Storage>(p);
    if (write_grad) a.grad[i] = from_opmath<Storage>(g);
    a.exp_avg[i] = from_opmath<Storage>(m);
    a.exp_avg_sq[i] = from_opmath<Storage>(v);
    if (kAmsgrad) a.max_exp_avg_sq[i] = from_opmath<Storage>(vmax);
  }
}

template <typename Storage, WeightDecay kWeightDecay, bool kAmsgrad, bool kMaximize>
__global__ void __launch_bounds__(kThreads) multi_tensor_adam_kernel(AdamKernelArgs args) {
  using Opmath = opmath_t<Storage>;
  // GradScaler found inf/NaN: nothing is written, the step counters included.
  if (args.found_inf != nullptr && *args.found_inf != 0.0f) return;
  const double lr = args.lr_on_device != nullptr ? static_cast<double>(*args.lr_on_device) : args.lr;
  const Opmath grad_scale_value = args.grad_scale != nullptr ? static_cast<Opmath>(*args.grad_scale) : Opmath(1);
  const Opmath* grad_scale = args.grad_scale != nullptr ? &grad_scale_value : nullptr;

  int64_t coefficients_of = -1;
  AdamCoefficients<Opmath> c{};
  for_each_chunk(args.table, [&](int64_t tensor, const int64_t* row, int64_t first, int64_t end) {
    // Consecutive chunks of a block usually belong to one tensor: the constants are computed once for them.
    if (tensor != coefficients_of) {
      const double step = static_cast<double>(args.steps[tensor] + 1.0f);  // incremented in float32, as torch
      c = make_adam_coefficients<Opmath>(lr, args.beta1, args.beta2, args.eps, args.weight_decay, step);
      coefficients_of = tensor;
    }
    adam_chunk<Storage, kWeightDecay, kAmsgrad, kMaximize>(arrays_of<Storage>(row), first, end,
                                                           grad_scale != nullptr, grad_scale, c);
  });

  // Every block has read its counters before arriving, so the last one may advance them all.
  if (last_block_to_finish(args.done_counter)) {
    for (int64_t i = threadIdx.x; i < args.table.num_tensors; i += blockDim.x) args.steps[i] += 1.0f;
  }
}

template <typename Storage, WeightDecay kWeightDecay, bool kAmsgrad, bool kMaximize>
void launch(const AdamLaunchParams& p, const AdamKernelArgs& args) {
  const void* kernel = reinterpret_cast<const void*>(&multi_tensor_adam_kernel<Storage, kWeightDecay, kAmsgrad, kMaximize>);
  const int blocks = persistent_grid_size(kernel, kThreads, p.device, p.num_chunks);
  multi_tensor_adam_kernel<Storage, kWeightDecay, kAmsgrad, kMaximize>
      <<<blocks, kThreads, 0, reinterpret_cast<cudaStream_t>(p.stream)>>>(args);
  check(cudaGetLastError(), "multi_tensor_adam_kernel launch");
}

template <typename Storage>
void dispatch_modes(const AdamLaunchParams& p, const AdamKernelArgs& args) {
  dispatch_adam_mode(p.weight_decay_mode, p.amsgrad, p.maximize, [&](auto weight_decay, auto amsgrad, auto maximize) {
    launch<Storage, decltype(weight_decay)::value, decltype(amsgrad)::value, decltype(maximize)::value>(p, args);
  });
}

}  // namespace

void adam_step(const AdamLaunchParams& p) {
  if (p.chunk_size <= 0 || p.chunk_size % 64 != 0) throw std::invalid_argument("chunk_size must be a positive multiple of 64");
  DeviceGuard guard(p.device);
  const AdamKernelArgs args{LaunchTable{p.table, p.num_tensors, p.num_chunks, p.chunk_size},
                            p.steps, p.done_counter, p.lr, p.lr_on_device, p.beta1, p.beta2, p.eps, p.weight_decay,
                            p.grad_scale, p.found_inf};
  switch (p.dtype) {
    case DType::kFloat32: return dispatch_modes<float>(p, args);
    case DType::kFloat64: return dispatch_modes<double>(p, args);
    case DType::kFloat16: return dispatch_modes<__half>(p, args);
    case DType::kBFloat16: return dispatch_modes<__nv_bfloat16>(p, args);
  }
  throw std::invalid_argument("unknown dtype code");
}

}  // namespace fusedadam::cuda
