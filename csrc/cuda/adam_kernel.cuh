// The Adam kernel over the multi-tensor machinery, as __host__ __device__ code: the GPU runs it through
// persistent_kernel, the host launcher through play_on_host (persistent_launch.cuh), compiled by nvcc from this one
// spelling. Per element it is the shared math of csrc/adam_math.h and the write-back of csrc/param_update.h; around
// them, storage-dtype loads and stores, 16 bytes per access for every array that is aligned.
#pragma once

#include <cstdint>

#include "../adam_math.h"
#include "../launch_table.h"
#include "../param_update.h"
#include "execution.cuh"
#include "multi_tensor_apply.cuh"
#include "persistent_launch.cuh"
#include "storage_access.cuh"

namespace fusedadam::cuda {

// One launch's arguments: plain values and addresses in the memory the kernel runs on.
struct AdamKernelArgs {
  LaunchTable table;
  float* steps;                 // one float32 counter per tensor, advanced by the epilogue
  unsigned int* done_counter;   // zero between launches
  double lr, beta1, beta2, eps, weight_decay;
  const float* lr_on_device;     // when set, read instead of lr (a tensor lr: capturable, schedulers)
  const float* beta1_on_device;  // when set, read instead of beta1 (tensor betas)
  const float* beta2_on_device;
  uint64_t seed;                 // of stochastic rounding
  const float* grad_scale;       // GradScaler: gradients are divided by it (and written back), or nullptr
  const float* found_inf;        // GradScaler: when non-zero the whole launch writes nothing, or nullptr
};

template <typename Storage>
FUSEDADAM_HOST_DEVICE Storage* column(const int64_t* row, int index) {
  return reinterpret_cast<Storage*>(static_cast<uintptr_t>(read_only(row + index)));
}

// A tensor's arrays, typed by the table's storage combination.
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
  float* exp_avg_absmax;  // 8-bit moments: one fp32 absmax per block (moment_quantization.h)
  float* exp_avg_sq_absmax;
  float* max_exp_avg_sq_absmax;

  FUSEDADAM_HOST_DEVICE explicit Arrays(const int64_t* row) {
    using namespace launch_table;
    param = column<Param>(row, kParam);
    grad = column<Param>(row, kGrad);
    exp_avg = column<State>(row, kExpAvg);
    exp_avg_sq = column<State>(row, kExpAvgSq);
    max_exp_avg_sq = column<State>(row, kMaxExpAvgSq);
    master = column<float>(row, kMaster);
    compensation = column<__nv_bfloat16>(row, kCompensation);
    exp_avg_absmax = column<float>(row, kExpAvgAbsmax);
    exp_avg_sq_absmax = column<float>(row, kExpAvgSqAbsmax);
    max_exp_avg_sq_absmax = column<float>(row, kMaxExpAvgSqAbsmax);
  }
};

// Which arrays are aligned for whole-pack accesses (16 bytes, or the pack's size) at one element; the others move
// element by element inside a pack.
struct Alignment {
  bool param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, master, compensation;

  FUSEDADAM_HOST_DEVICE int unaligned() const {
    return !param + !grad + !exp_avg + !exp_avg_sq + !max_exp_avg_sq + !master + !compensation;
  }
};

template <typename Precision, WeightDecay kWeightDecay, bool kAmsgrad, bool kMaximize>
struct AdamKernel {
  using Args = AdamKernelArgs;
  static constexpr bool kWarpSynchronous = false;
  static constexpr int kMinBlocksPerSm = cuda::kMinBlocksPerSm;
  using Param = storage_t<Precision::param>;
  using State = storage_t<Precision::state>;
  using Opmath = opmath_t<Param>;
  static constexpr ParamUpdate kUpdate = Precision::update;
  static constexpr bool kMaster = kUpdate == ParamUpdate::kMasterWeights;
  static constexpr bool kKahan = kUpdate == ParamUpdate::kKahanSummation;
  static constexpr bool kStochastic = kUpdate == ParamUpdate::kStochasticRounding;
  // Elements per pack: enough that the narrowest array moves 16 bytes per access. Except beside AMSGrad's third moment
  // with Kahan's compensation or stochastic rounding's hash, where 8 elements of every array do not fit in the 64
  // registers that 4 resident blocks leave a thread (ptxas spilled): there 4, so 16-bit arrays move 8 bytes per access.
  static constexpr int kNarrowest = sizeof(Param) < sizeof(State) ? sizeof(Param) : sizeof(State);
  static constexpr int kVec = kAmsgrad && (kKahan || kStochastic) ? 4 : 16 / (kKahan ? 2 : kNarrowest);

  // What one step does to the elements of one tensor, in registers: unscale (GradScaler), Adam's update
  // (adam_math.h) and the parameter's write-back (param_update.h).
  struct ElementStep {
    bool unscale;          // GradScaler: divide by grad_scale and write the unscaled gradient back
    Opmath grad_scale;
    AdamCoefficients<Opmath> c;
    uint32_t rounding_key;

    FUSEDADAM_HOST_DEVICE void operator()(int64_t index, Param& param, Param& grad, State& exp_avg, State& exp_avg_sq,
                                          State& max_exp_avg_sq, float& master, __nv_bfloat16& compensation) const {
      const Opmath before = kMaster ? static_cast<Opmath>(master) : to_opmath(param);
      Opmath p = before, g = to_opmath(grad), m = to_opmath(exp_avg), v = to_opmath(exp_avg_sq);
      Opmath vmax = kAmsgrad ? to_opmath(max_exp_avg_sq) : Opmath(0);
      if (unscale) g = g / grad_scale;  // the unscaled gradient is also written back, as torch does
      adam_update<kWeightDecay, kAmsgrad, kMaximize>(p, g, m, v, vmax, c);
      Opmath carried = kKahan ? static_cast<Opmath>(to_opmath(compensation)) : Opmath(0);
      const uint32_t random = kStochastic ? rounding_bits(rounding_key, index) : 0u;
      param = from_opmath<Param>(param_to_store<kUpdate>(before, p, carried, random));
      if (unscale) grad = from_opmath<Param>(g);
      if constexpr (kMaster) master = static_cast<float>(p);
      if constexpr (kKahan) compensation = from_opmath<__nv_bfloat16>(static_cast<float>(carried));
      exp_avg = from_opmath<State>(m);
      exp_avg_sq = from_opmath<State>(v);
      if (kAmsgrad) max_exp_avg_sq = from_opmath<State>(vmax);
    }
  };

  FUSEDADAM_HOST_DEVICE static Alignment alignment_at(const Arrays<Precision>& a, int64_t index) {
    return Alignment{aligned16(a.param + index),          aligned16(a.grad + index),
                     aligned16(a.exp_avg + index),        aligned16(a.exp_avg_sq + index),
                     !kAmsgrad || aligned16(a.max_exp_avg_sq + index), !kMaster || aligned16(a.master + index),
                     !kKahan || aligned16(a.compensation + index)};
  }

  // Bytes per element of the arrays a pack would move in 16-byte accesses from element `index` on.
  FUSEDADAM_HOST_DEVICE static int aligned_bytes(const Arrays<Precision>& a, int64_t index) {
    const Alignment at = alignment_at(a, index);
    return (at.param + at.grad) * static_cast<int>(sizeof(Param)) +
           (at.exp_avg + at.exp_avg_sq + (kAmsgrad && at.max_exp_avg_sq)) * static_cast<int>(sizeof(State)) +
           (kMaster && at.master) * 4 + (kKahan && at.compensation) * 2;
  }

  // How many of a chunk's first elements to step one at a time, so that the packs after them find the most bytes
  // aligned. Views into one flat buffer (FSDP, Megatron) start anywhere: without the peel one unaligned array would
  // send the whole tensor through the scalar loop.
  FUSEDADAM_HOST_DEVICE static int64_t peel(const Arrays<Precision>& a, int64_t first) {
    int64_t best = 0;
    int best_bytes = aligned_bytes(a, first);
#pragma unroll
    for (int skip = 1; skip < kVec; ++skip) {
      const int bytes = aligned_bytes(a, first + skip);
      if (bytes > best_bytes) {
        best = skip;
        best_bytes = bytes;
      }
    }
    return best;
  }

  // The arrays of elements [i, i + kCount) besides the moments: the parameter, its gradient, and the master copy or
  // compensation of the update mode. Any Arrays type: the 8-bit kernel's moments are codes, the rest alike.
  template <int kCount>
  struct ParamPacks {
    Pack<Param, kCount> param, grad;
    Pack<float, kCount> master;
    Pack<__nv_bfloat16, kCount> compensation;

    template <typename AnyArrays>
    FUSEDADAM_HOST_DEVICE void load(const AnyArrays& a, int64_t i, const Alignment& aligned) {
      param = load_pack<kCount>(a.param + i, aligned.param);
      grad = load_pack<kCount>(a.grad + i, aligned.grad);
      if constexpr (kMaster) master = load_pack<kCount>(a.master + i, aligned.master);
      if constexpr (kKahan) compensation = load_pack<kCount>(a.compensation + i, aligned.compensation);
    }

    template <typename AnyArrays>
    FUSEDADAM_HOST_DEVICE void store(const AnyArrays& a, int64_t i, const Alignment& aligned, bool unscaled) const {
      store_pack(a.param + i, param, aligned.param);
      if (unscaled) store_pack(a.grad + i, grad, aligned.grad);
      if constexpr (kMaster) store_pack(a.master + i, master, aligned.master);
      if constexpr (kKahan) store_pack(a.compensation + i, compensation, aligned.compensation);
    }

    // Element k stepped with moments m, v, vmax (registers, in the moments' storage or fp32).
    template <typename Moment>
    FUSEDADAM_HOST_DEVICE void step(const ElementStep& element_step, int64_t index, int k, Moment& m, Moment& v,
                                    Moment& vmax) {
      element_step(index, param.values[k], grad.values[k], m, v, vmax, master.values[k], compensation.values[k]);
    }
  };

  // Elements [i, i + kCount): every array loaded, stepped, stored. kCount is kVec inside the packs, 1 elsewhere.
  template <int kCount>
  FUSEDADAM_HOST_DEVICE static void step_elements(const Arrays<Precision>& a, int64_t i, const Alignment& aligned,
                                                  const ElementStep& step) {
    ParamPacks<kCount> p;
    p.load(a, i, aligned);
    Pack<State, kCount> m = load_pack<kCount>(a.exp_avg + i, aligned.exp_avg);
    Pack<State, kCount> v = load_pack<kCount>(a.exp_avg_sq + i, aligned.exp_avg_sq);
    Pack<State, kCount> vmax;
    if constexpr (kAmsgrad) vmax = load_pack<kCount>(a.max_exp_avg_sq + i, aligned.max_exp_avg_sq);
#pragma unroll
    for (int k = 0; k < kCount; ++k) p.step(step, i + k, k, m.values[k], v.values[k], vmax.values[k]);
    p.store(a, i, aligned, step.unscale);
    store_pack(a.exp_avg + i, m, aligned.exp_avg);
    store_pack(a.exp_avg_sq + i, v, aligned.exp_avg_sq);
    if constexpr (kAmsgrad) store_pack(a.max_exp_avg_sq + i, vmax, aligned.max_exp_avg_sq);
  }

  // One chunk, [first, end), divided among the block's threads: the peeled head and the tail element by element,
  // the rest in packs of kVec consecutive elements per thread.
  FUSEDADAM_HOST_DEVICE static void step_chunk(const GridPosition& at, const Arrays<Precision>& a, int64_t first,
                                               int64_t end, const ElementStep& step) {
    const int64_t head = first + peel(a, first);
    const int64_t packs_begin = head < end ? head : end;
    const int64_t packs_end = packs_begin + (end - packs_begin) / kVec * kVec;
    const Alignment aligned = alignment_at(a, packs_begin);  // the same at every pack: packs_begin + kVec * n
    for (int64_t i = packs_begin + static_cast<int64_t>(at.thread) * kVec; i < packs_end;
         i += static_cast<int64_t>(at.threads) * kVec) {
      at.count(Tally::kPackedElements, kVec);
      at.count(Tally::kUnalignedPackArrays, aligned.unaligned());
      step_elements<kVec>(a, i, aligned, step);
    }
    const Alignment scalar{};
    for (int64_t i = first + at.thread; i < packs_begin; i += at.threads) {
      at.count(Tally::kScalarElements);
      step_elements<1>(a, i, scalar, step);
    }
    for (int64_t i = packs_end + at.thread; i < end; i += at.threads) {
      at.count(Tally::kScalarElements);
      step_elements<1>(a, i, scalar, step);
    }
  }

  // GradScaler found inf/NaN: nothing is written, the step counters included.
  FUSEDADAM_HOST_DEVICE static bool skipped(const Args& args) {
    return args.found_inf != nullptr && read_only(args.found_inf) != 0.0f;
  }

  // The step's constants for a tensor whose counter reads `step_count`. The hyperparameters are read again each time
  // (from the arguments, or the device tensors the user may update in place) rather than kept live across the loop.
  FUSEDADAM_HOST_DEVICE static AdamCoefficients<Opmath> coefficients(const Args& args, float step_count) {
    const auto value = [](const float* on_device, double otherwise) {
      return on_device != nullptr ? static_cast<double>(read_only(on_device)) : otherwise;
    };
    return make_adam_coefficients<Opmath>(value(args.lr_on_device, args.lr), value(args.beta1_on_device, args.beta1),
                                          value(args.beta2_on_device, args.beta2), args.eps, args.weight_decay,
                                          step_count);
  }

  // Calls step_chunk(row, first, end, step) for every chunk of this thread's block, `step` holding the constants of
  // the chunk's tensor.
  template <typename StepChunk>
  FUSEDADAM_HOST_DEVICE static void walk_chunks(const GridPosition& at, const Args& args, StepChunk&& step_chunk) {
    ElementStep step{args.grad_scale != nullptr,
                     args.grad_scale != nullptr ? static_cast<Opmath>(read_only(args.grad_scale)) : Opmath(1),
                     AdamCoefficients<Opmath>{}, 0u};
    // The constants depend on the tensor only through its step counter, and a launch's tensors nearly always share
    // one: they are computed when the counter differs from the last chunk's, not per chunk.
    float coefficients_step = -1.0f;
    int64_t rounding_key_of = -1;  // the tensor whose stream step.rounding_key is
    for_each_chunk(at, args.table, [&](int64_t tensor, const int64_t* row, int64_t first, int64_t end) {
      const float step_count = *global(args.steps + tensor) + 1.0f;  // incremented in float32, as torch does
      if (step_count != coefficients_step) {
        step.c = coefficients(args, step_count);
        coefficients_step = step_count;
        at.count(Tally::kCoefficients);
      }
      if (kStochastic && tensor != rounding_key_of) {
        step.rounding_key = rounding_key(args.seed, static_cast<uint32_t>(read_only(row + launch_table::kSalt)),
                                         static_cast<uint32_t>(step_count));
        rounding_key_of = tensor;
        at.count(Tally::kRoundingKeys);
      }
      step_chunk(row, first, end, static_cast<const ElementStep&>(step));
    });
  }

  FUSEDADAM_HOST_DEVICE static void body(const GridPosition& at, const Args& args) {
    walk_chunks(at, args, [&](const int64_t* row, int64_t first, int64_t end, const ElementStep& step) {
      step_chunk(at, Arrays<Precision>(row), first, end, step);
    });
  }

  // Every block has read its counters before arriving, so the last one may advance them all.
  FUSEDADAM_HOST_DEVICE static void epilogue(const GridPosition& at, const Args& args) {
    for (int64_t i = at.thread; i < args.table.num_tensors; i += at.threads) args.steps[i] += 1.0f;
  }
};

}  // namespace fusedadam::cuda
