// The Adam kernel with 8-bit moments (csrc/moment_quantization.h), over the same multi-tensor machinery as
// adam_kernel.cuh and with its per-element step: each moment is decoded to fp32 before it and encoded after it.
//
// A block of kBlock = 256 elements shares one absmax, the largest magnitude of its new fp32 moments, which every one
// of its codes depends on. So one warp steps one block: 8 elements a lane, in runs of 16 bytes of the parameter
// (4 fp32 or 8 16-bit elements) placed so that each access of the warp covers consecutive memory. Each lane decodes,
// steps and stores its parameters, keeping its moments in registers; warp_max gives every lane the block's absmax;
// each lane encodes and stores its codes, and lane 0 the absmaxes. The moments make one trip through registers and
// the block needs no shared memory and no barrier. A chunk is a whole number of blocks (kernel_args checks), so the
// block's absmax belongs to one chunk, hence one warp.
#pragma once

#include <cstdint>

#include "../adam_modes.h"  // Precision
#include "../moment_quantization.h"
#include "adam_kernel.cuh"

namespace fusedadam::cuda {

template <typename Precision, WeightDecay kWeightDecay, bool kAmsgrad, bool kMaximize>
struct EightBitAdamKernel {
  static_assert(Precision::state == DType::kMoment8Bit, "the kernel of 8-bit moments");
  using Args = AdamKernelArgs;
  static constexpr bool kWarpSynchronous = true;
  // Two resident blocks per SM (128 registers a thread) on every architecture: a lane holds its 8 elements' moments
  // (24 fp32 with AMSGrad) across the warp's exchange, and ptxas wants 96-122 registers on sm_90, spilling at 64.
  static constexpr int kMinBlocksPerSm = 2;
  // The per-element step and its constants are those of the kernel with fp32 moments: decoded moments are fp32.
  using Fp32Moments = fusedadam::Precision<Precision::param, DType::kFloat32, Precision::update>;
  using Elementwise = AdamKernel<Fp32Moments, kWeightDecay, kAmsgrad, kMaximize>;
  using ElementStep = typename Elementwise::ElementStep;
  template <int kCount>
  using ParamPacks = typename Elementwise::template ParamPacks<kCount>;
  using Param = storage_t<Precision::param>;
  using SignedMap = quantization::SignedMap;
  using UnsignedMap = quantization::UnsignedMap;
  static constexpr int64_t kBlock = quantization::kBlock;
  // Elements of a lane's run: 16 bytes of the parameter, except beside Kahan's compensation and AMSGrad's third moment,
  // where 8 (4 elements) keep the kernel in 128 registers (with 16, ptxas spilled 8-24 bytes on sm_80 / sm_90).
  static constexpr int kVec = kAmsgrad && Elementwise::kKahan ? 4 : 16 / static_cast<int>(sizeof(Param));
  static constexpr int kRuns = static_cast<int>(kBlock) / (kWarpSize * kVec);
  static constexpr int kPerLane = kRuns * kVec;
  static_assert(kRuns * kWarpSize * kVec == kBlock, "a warp's runs cover one block");

  // A lane's moments between the step and the encoding, fp32; zero past the end of a short last block.
  struct LaneMoments {
    float m[kPerLane], v[kPerLane], vmax[kPerLane];
  };

  // The element of its block where run r of `lane` begins.
  FUSEDADAM_HOST_DEVICE static int run_start(int lane, int r) { return (r * kWarpSize + lane) * kVec; }

  // Which arrays move as whole packs: a property of the tensor, since every run starts a multiple of kVec elements
  // past its first element (the packs' alignment divides kVec elements' bytes).
  FUSEDADAM_HOST_DEVICE static Alignment alignment_of(const Arrays<Precision>& a) {
    return Alignment{pack_aligned<kVec>(a.param),
                     pack_aligned<kVec>(a.grad),
                     pack_aligned<kVec>(a.exp_avg),
                     pack_aligned<kVec>(a.exp_avg_sq),
                     !kAmsgrad || pack_aligned<kVec>(a.max_exp_avg_sq),
                     !Elementwise::kMaster || pack_aligned<kVec>(a.master),
                     !Elementwise::kKahan || pack_aligned<kVec>(a.compensation)};
  }

  // Elements [i, i + kCount) decoded, stepped, and their parameter-side arrays stored; their moments land in m, v,
  // vmax.
  template <int kCount>
  FUSEDADAM_HOST_DEVICE static void step_run(const Arrays<Precision>& a, int64_t i, const Alignment& aligned,
                                             const ElementStep& step, const float (&inverse_scale)[3], float* m,
                                             float* v, float* vmax) {
    using quantization::decode;
    ParamPacks<kCount> p;
    p.load(a, i, aligned);
    const Pack<uint8_t, kCount> m_codes = load_pack<kCount>(a.exp_avg + i, aligned.exp_avg);
    const Pack<uint8_t, kCount> v_codes = load_pack<kCount>(a.exp_avg_sq + i, aligned.exp_avg_sq);
    Pack<uint8_t, kCount> vmax_codes;
    if constexpr (kAmsgrad) vmax_codes = load_pack<kCount>(a.max_exp_avg_sq + i, aligned.max_exp_avg_sq);
#pragma unroll
    for (int k = 0; k < kCount; ++k) {
      m[k] = decode<SignedMap>(m_codes.values[k], inverse_scale[0]);
      v[k] = decode<UnsignedMap>(v_codes.values[k], inverse_scale[1]);
      vmax[k] = kAmsgrad ? decode<UnsignedMap>(vmax_codes.values[k], inverse_scale[2]) : 0.0f;
      p.step(step, i + k, k, m[k], v[k], vmax[k]);
    }
    p.store(a, i, aligned, step.unscale);
  }

  // One lane's runs of the block starting at element `begin`, `n` <= kBlock elements long.
  FUSEDADAM_HOST_DEVICE static void step_lane(const GridPosition& at, const Arrays<Precision>& a, int lane,
                                              int64_t begin, int64_t n, const Alignment& aligned,
                                              const ElementStep& step, const float (&inverse_scale)[3],
                                              LaneMoments& moments) {
#pragma unroll
    for (int r = 0; r < kRuns; ++r) {
      const int start = run_start(lane, r);
      float* const m = moments.m + r * kVec;
      float* const v = moments.v + r * kVec;
      float* const vmax = moments.vmax + r * kVec;
      if (n == kBlock) {
        at.count(Tally::kPackedElements, kVec);
        at.count(Tally::kUnalignedPackArrays, aligned.unaligned());
        step_run<kVec>(a, begin + start, aligned, step, inverse_scale, m, v, vmax);
        continue;
      }
      // A short block: element by element, unrolled so that the moments stay registers (indices known at compile time).
      const Alignment scalar{};
#pragma unroll
      for (int k = 0; k < kVec; ++k) {
        if (start + k < n) {
          at.count(Tally::kScalarElements);
          step_run<1>(a, begin + start + k, scalar, step, inverse_scale, m + k, v + k, vmax + k);
        } else {
          m[k] = v[k] = vmax[k] = 0.0f;  // no part in the absmax
        }
      }
    }
  }

  // A lane's codes of one moment for the block's absmax, stored run by run (element by element in a short block).
  template <typename Map>
  FUSEDADAM_HOST_DEVICE static void store_codes(uint8_t* codes, int lane, int64_t begin, int64_t n, bool aligned,
                                                const float* values, float absmax) {
    const float scale = quantization::block_scale<Map>(absmax);
#pragma unroll
    for (int r = 0; r < kRuns; ++r) {
      const int start = run_start(lane, r);
      Pack<uint8_t, kVec> pack;
#pragma unroll
      for (int k = 0; k < kVec; ++k) pack.values[k] = quantization::encode<Map>(values[r * kVec + k], scale);
      if (n == kBlock) {
        store_pack(codes + begin + start, pack, aligned);
        continue;
      }
#pragma unroll
      for (int k = 0; k < kVec; ++k) {
        if (start + k < n) *global(codes + begin + start + k) = pack.values[k];
      }
    }
  }

  // The largest magnitude of the lane's values, as fp32 bits (quantization::block_absmax's order: NaN propagates).
  FUSEDADAM_HOST_DEVICE static uint32_t lane_absmax_bits(const float (&values)[kPerLane]) {
    uint32_t largest = 0;
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
      largest = quantization::larger_magnitude(largest, quantization::magnitude_bits(values[k]));
    }
    return largest;
  }

  // One block of a chunk that ends at `end`, stepped by the lanes of one warp (all of them on the GPU; the call's
  // kLanesPerCall lanes on the host). Only a tensor's last chunk ends inside a block, at the tensor's end.
  FUSEDADAM_HOST_DEVICE static void step_block(const GridPosition& at, const Arrays<Precision>& a, int64_t block,
                                               int64_t end, const Alignment& aligned, const ElementStep& step) {
    const int first_lane = at.thread % kWarpSize;
    const int64_t begin = block * kBlock;
    const int64_t n = end - begin < kBlock ? end - begin : kBlock;
    // Read by every lane before lane 0 writes the new ones: each lane's read feeds its part of warp_max below. Plain
    // loads, not read_only's non-coherent ones: the launch writes these words.
    const float inverse_scale[3] = {
        quantization::block_inverse_scale<SignedMap>(*global(a.exp_avg_absmax + block)),
        quantization::block_inverse_scale<UnsignedMap>(*global(a.exp_avg_sq_absmax + block)),
        kAmsgrad ? quantization::block_inverse_scale<UnsignedMap>(*global(a.max_exp_avg_sq_absmax + block)) : 0.0f};
    LaneMoments moments[kLanesPerCall];
    uint32_t m_bits[kLanesPerCall], v_bits[kLanesPerCall], vmax_bits[kLanesPerCall];
#pragma unroll
    for (int l = 0; l < kLanesPerCall; ++l) {
      step_lane(at, a, first_lane + l, begin, n, aligned, step, inverse_scale, moments[l]);
      m_bits[l] = lane_absmax_bits(moments[l].m);
      v_bits[l] = lane_absmax_bits(moments[l].v);
      vmax_bits[l] = kAmsgrad ? lane_absmax_bits(moments[l].vmax) : 0u;
    }
    const float m_absmax = float_of_bits(warp_max(m_bits));
    const float v_absmax = float_of_bits(warp_max(v_bits));
    const float vmax_absmax = kAmsgrad ? float_of_bits(warp_max(vmax_bits)) : 0.0f;
#pragma unroll
    for (int l = 0; l < kLanesPerCall; ++l) {
      const int lane = first_lane + l;
      store_codes<SignedMap>(a.exp_avg, lane, begin, n, aligned.exp_avg, moments[l].m, m_absmax);
      store_codes<UnsignedMap>(a.exp_avg_sq, lane, begin, n, aligned.exp_avg_sq, moments[l].v, v_absmax);
      if constexpr (kAmsgrad) {
        store_codes<UnsignedMap>(a.max_exp_avg_sq, lane, begin, n, aligned.max_exp_avg_sq, moments[l].vmax,
                                 vmax_absmax);
      }
      if (lane == 0) {
        at.count(Tally::kQuantizedBlocks);
        *global(a.exp_avg_absmax + block) = m_absmax;
        *global(a.exp_avg_sq_absmax + block) = v_absmax;
        if constexpr (kAmsgrad) *global(a.max_exp_avg_sq_absmax + block) = vmax_absmax;
      }
    }
  }

  // A chunk's blocks dealt to the block's warps in turn; every lane of a warp takes the same blocks.
  FUSEDADAM_HOST_DEVICE static void step_chunk(const GridPosition& at, const int64_t* row, int64_t first, int64_t end,
                                               const ElementStep& step) {
    const Arrays<Precision> a(row);
    const Alignment aligned = alignment_of(a);
    const int64_t warps = at.threads / kWarpSize;
    const int64_t end_block = (end + kBlock - 1) / kBlock;
    for (int64_t block = first / kBlock + at.thread / kWarpSize; block < end_block; block += warps) {
      step_block(at, a, block, end, aligned, step);
    }
  }

  FUSEDADAM_HOST_DEVICE static bool skipped(const Args& args) { return Elementwise::skipped(args); }

  FUSEDADAM_HOST_DEVICE static void body(const GridPosition& at, const Args& args) {
    Elementwise::walk_chunks(at, args, [&](const int64_t* row, int64_t first, int64_t end, const ElementStep& step) {
      step_chunk(at, row, first, end, step);
    });
  }

  FUSEDADAM_HOST_DEVICE static void epilogue(const GridPosition& at, const Args& args) {
    Elementwise::epilogue(at, args);
  }
};

}  // namespace fusedadam::cuda
