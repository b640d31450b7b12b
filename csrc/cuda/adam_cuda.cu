// The Adam functor over the multi-tensor machinery: storage-dtype loads and stores (16 bytes per access
// where every array is aligned) around the shared per-element math of csrc/adam_math.h and the parameter
// write-back of csrc/param_update.h, one kernel per storage combination (adam_modes.h) and mode.
#include "adam_cuda.h"

#include <stdexcept>

#include "../adam_math.h"
#include "../adam_modes.h"
#include "../launch_table.h"
#include "../param_update.h"
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
  uint64_t seed;
  const float* grad_scale;
  const float* found_inf;
};

template <typename Storage>
__device__ __forceinline__ Storage* column(const int64_t* row, int index) {
  return reinterpret_cast<Storage*>(static_cast<uintptr_t>(__ldg(row + index)));
}

// The arrays of one tensor, typed by the table's storage combination.
template <typename Precision>
struct Arrays {
  using Param = storage_t<Precision::param>;
  using State = storage_t<Precision::state>;
  Param* param;
  Param* grad;
  State* exp_avg;
  State* exp_avg_sq;
  State* max_exp_avg_sq;
  float* master;
  __nv_bfloat16* compensation;

  __device__ __forceinline__ explicit Arrays(const int64_t* row) {
    using namespace launch_table;
    param = column<Param>(row, kParam);
    grad = column<Param>(row, kGrad);
    exp_avg = column<State>(row, kExpAvg);
    exp_avg_sq = column<State>(row, kExpAvgSq);
    max_exp_avg_sq = column<State>(row, kMaxExpAvgSq);
    master = column<float>(row, kMaster);
    compensation = column<__nv_bfloat16>(row, kCompensation);
  }
};

// What one step does to one element, in registers: unscale (GradScaler), Adam's update (adam_math.h), and the
// parameter's write-back (param_update.h).
template <typename Precision, WeightDecay kWeightDecay, bool kAmsgrad, bool kMaximize>
struct ElementStep {
  using Param = storage_t<Precision::param>;
  using State = storage_t<Precision::state>;
  using Opmath = opmath_t<Param>;
  static constexpr ParamUpdate kUpdate = Precision::update;
  static constexpr bool kMaster = kUpdate == ParamUpdate::kMasterWeights;
  static constexpr bool kKahan = kUpdate == ParamUpdate::kKahanSummation;
  static constexpr bool kStochastic = kUpdate == ParamUpdate::kStochasticRounding;

  const Opmath* grad_scale;  // nullptr without GradScaler
  const AdamCoefficients<Opmath>& c;
  uint32_t rounding_key;

  // Element `index` of the tensor; the references are the element's storage slots in registers or memory.
  __device__ __forceinline__ void operator()(int64_t index, Param& param, Param& grad, State& exp_avg,
                                             State& exp_avg_sq, State& max_exp_avg_sq, float& master,
                                             __nv_bfloat16& compensation) const {
    const Opmath before = kMaster ? static_cast<Opmath>(master) : to_opmath(param);
    Opmath p = before, g = to_opmath(grad), m = to_opmath(exp_avg), v = to_opmath(exp_avg_sq);
    Opmath vmax = kAmsgrad ? to_opmath(max_exp_avg_sq) : Opmath(0);
    if (grad_scale != nullptr) g = g / *grad_scale;  // the unscaled gradient is also written back, as torch does
    adam_update<kWeightDecay, kAmsgrad, kMaximize>(p, g, m, v, vmax, c);
    Opmath carried = kKahan ? static_cast<Opmath>(to_opmath(compensation)) : Opmath(0);
    const uint32_t random = kStochastic ? rounding_bits(rounding_key, index) : 0u;
    param = from_opmath<Param>(param_to_store<kUpdate>(before, p, carried, random));
    if (grad_scale != nullptr) grad = from_opmath<Param>(g);
    if constexpr (kMaster) master = static_cast<float>(p);
    if constexpr (kKahan) compensation = from_opmath<__nv_bfloat16>(static_cast<float>(carried));
    exp_avg = from_opmath<State>(m);
    exp_avg_sq = from_opmath<State>(v);
    if (kAmsgrad) max_exp_avg_sq = from_opmath<State>(vmax);
  }
};

template <typename Precision, WeightDecay kWeightDecay, bool kAmsgrad, bool kMaximize>
__device__ __forceinline__ void adam_chunk(const Arrays<Precision>& a, int64_t first, int64_t end,
                                           const ElementStep<Precision, kWeightDecay, kAmsgrad, kMaximize>& step) {
  using Param = storage_t<Precision::param>;
  using State = storage_t<Precision::state>;
  constexpr bool kMaster = step.kMaster, kKahan = step.kKahan;
  const bool write_grad = step.grad_scale != nullptr;
  // Elements per thread and iteration: enough that the narrowest array moves 16 bytes per access.
  constexpr int kNarrowest = sizeof(Param) < sizeof(State) ? sizeof(Param) : sizeof(State);
  constexpr int kVec = 16 / (kKahan ? 2 : kNarrowest);
  int64_t scalar_begin = first;
  // Chunk starts are multiples of 64 elements, so aligned arrays stay aligned at every pack.
  if (aligned16(a.param) && aligned16(a.grad) && aligned16(a.exp_avg) && aligned16(a.exp_avg_sq) &&
      (!kAmsgrad || aligned16(a.max_exp_avg_sq)) && (!kMaster || aligned16(a.master)) &&
      (!kKahan || aligned16(a.compensation))) {
    const int64_t vector_end = first + (end - first) / kVec * kVec;
    for (int64_t i = first + static_cast<int64_t>(threadIdx.x) * kVec; i < vector_end;
         i += static_cast<int64_t>(blockDim.x) * kVec) {
      Pack<Param, kVec> p = load_pack<kVec>(a.param + i), g = load_pack<kVec>(a.grad + i);
      Pack<State, kVec> m = load_pack<kVec>(a.exp_avg + i), v = load_pack<kVec>(a.exp_avg_sq + i), vmax;
      Pack<float, kVec> master;
      Pack<__nv_bfloat16, kVec> compensation;
      if constexpr (kAmsgrad) vmax = load_pack<kVec>(a.max_exp_avg_sq + i);
      if constexpr (kMaster) master = load_pack<kVec>(a.master + i);
      if constexpr (kKahan) compensation = load_pack<kVec>(a.compensation + i);
#pragma unroll
      for (int k = 0; k < kVec; ++k) {
        step(i + k, p.values[k], g.values[k], m.values[k], v.values[k], vmax.values[k], master.values[k],
             compensation.values[k]);
      }
      store_pack(a.param + i, p);
      if (write_grad) store_pack(a.grad + i, g);
      store_pack(a.exp_avg + i, m);
      store_pack(a.exp_avg_sq + i, v);
      if constexpr (kAmsgrad) store_pack(a.max_exp_avg_sq + i, vmax);
      if constexpr (kMaster) store_pack(a.master + i, master);
      if constexpr (kKahan) store_pack(a.compensation + i, compensation);
    }
    scalar_begin = vector_end;
  }
  for (int64_t i = scalar_begin + threadIdx.x; i < end; i += blockDim.x) {
    Param p = a.param[i], g = a.grad[i];
    State m = a.exp_avg[i], v = a.exp_avg_sq[i], vmax = kAmsgrad ? a.max_exp_avg_sq[i] : State{};
    float master = kMaster ? a.master[i] : 0.0f;
    __nv_bfloat16 compensation = kKahan ? a.compensation[i] : __nv_bfloat16{};
    step(i, p, g, m, v, vmax, master, compensation);
    a.param[i] = p;
    if (write_grad) a.grad[i] = g;
    a.exp_avg[i] = m;
    a.exp_avg_sq[i] = v;
    if (kAmsgrad) a.max_exp_avg_sq[i] = vmax;
    if (kMaster) a.master[i] = master;
    if (kKahan) a.compensation[i] = compensation;
  }
}

template <typename Precision, WeightDecay kWeightDecay, bool kAmsgrad, bool kMaximize>
__global__ void __launch_bounds__(kThreads) multi_tensor_adam_kernel(AdamKernelArgs args) {
  using Opmath = opmath_t<storage_t<Precision::param>>;
  // GradScaler found inf/NaN: nothing is written, the step counters included.
  if (args.found_inf != nullptr && *args.found_inf != 0.0f) return;
  const double lr = args.lr_on_device != nullptr ? static_cast<double>(*args.lr_on_device) : args.lr;
  const Opmath grad_scale_value = args.grad_scale != nullptr ? static_cast<Opmath>(*args.grad_scale) : Opmath(1);
  const Opmath* grad_scale = args.grad_scale != nullptr ? &grad_scale_value : nullptr;

  int64_t coefficients_of = -1;
  AdamCoefficients<Opmath> c{};
  uint32_t rounding_key = 0;
  for_each_chunk(args.table, [&](int64_t tensor, const int64_t* row, int64_t first, int64_t end) {
    // Consecutive chunks of a block usually belong to one tensor: the constants are computed once for them.
    if (tensor != coefficients_of) {
      const float step = args.steps[tensor] + 1.0f;  // incremented in float32, as torch does
      c = make_adam_coefficients<Opmath>(lr, args.beta1, args.beta2, args.eps, args.weight_decay, step);
      if (Precision::update == ParamUpdate::kStochasticRounding) {
        rounding_key = fusedadam::rounding_key(args.seed, static_cast<uint32_t>(__ldg(row + launch_table::kSalt)),
                                               static_cast<uint32_t>(step));
      }
      coefficients_of = tensor;
    }
    const ElementStep<Precision, kWeightDecay, kAmsgrad, kMaximize> element_step{grad_scale, c, rounding_key};
    adam_chunk(Arrays<Precision>(row), first, end, element_step);
  });

  // Every block has read its counters before arriving, so the last one may advance them all.
  if (last_block_to_finish(args.done_counter)) {
    for (int64_t i = threadIdx.x; i < args.table.num_tensors; i += blockDim.x) args.steps[i] += 1.0f;
  }
}

template <typename Precision, WeightDecay kWeightDecay, bool kAmsgrad, bool kMaximize>
void launch(const AdamLaunchParams& p, const AdamKernelArgs& args) {
  const void* kernel =
      reinterpret_cast<const void*>(&multi_tensor_adam_kernel<Precision, kWeightDecay, kAmsgrad, kMaximize>);
  const int blocks = persistent_grid_size(kernel, kThreads, p.device, p.num_chunks);
  multi_tensor_adam_kernel<Precision, kWeightDecay, kAmsgrad, kMaximize>
      <<<blocks, kThreads, 0, reinterpret_cast<cudaStream_t>(p.stream)>>>(args);
  check(cudaGetLastError(), "multi_tensor_adam_kernel launch");
}

}  // namespace

void adam_step(const AdamLaunchParams& p) {
  if (p.chunk_size <= 0 || p.chunk_size % 64 != 0) throw std::invalid_argument("chunk_size must be a positive multiple of 64");
  DeviceGuard guard(p.device);
  const AdamKernelArgs args{LaunchTable{p.table, p.num_tensors, p.num_chunks, p.chunk_size},
                            p.steps, p.done_counter, p.lr, p.lr_on_device, p.beta1, p.beta2, p.eps, p.weight_decay,
                            p.seed, p.grad_scale, p.found_inf};
  dispatch_precision(p.dtype, p.state_dtype, p.param_update, [&](auto precision) {
    dispatch_adam_mode(p.weight_decay_mode, p.amsgrad, p.maximize, [&](auto weight_decay, auto amsgrad, auto maximize) {
      launch<decltype(precision), decltype(weight_decay)::value, decltype(amsgrad)::value, decltype(maximize)::value>(
          p, args);
    });
  });
}

}  // namespace fusedadam::cuda
