// Where a thread of a kernel is, and the few operations whose spelling differs between a GPU and the host
// launcher that plays a kernel's grid on the CPU (DESIGN.md section 5, "Running device code without a GPU").
//
// Kernel code reads its indices from a GridPosition handed to it, never from threadIdx / blockIdx: on the GPU
// the position comes from the hardware registers, on the host from the launcher's loops over every block and
// every thread. Everything else the kernel does is one __host__ __device__ spelling, compiled by nvcc for both.
#pragma once

#include <cstdint>

#include "../adam_math.h"  // FUSEDADAM_HOST_DEVICE

namespace fusedadam::cuda {

// What the host launcher counts while it plays a grid, so tests can see which paths ran. On a GPU nothing is
// counted (the tally pointer is null and the counting code is not compiled for the device).
struct ExecutionTally {
  int64_t blocks = 0;                    // blocks run
  int64_t chunks = 0;                    // chunk rows visited (by a block)
  int64_t packed_elements = 0;           // elements stepped inside a pack (all the pack's arrays at once)
  int64_t unaligned_pack_arrays = 0;     // (pack, array) pairs moved element by element: that array not aligned
  int64_t scalar_elements = 0;           // elements stepped one at a time (a chunk's peeled head or its tail)
  int64_t coefficient_computations = 0;  // per-thread computations of a step's Adam constants
  int64_t rounding_key_computations = 0; // per-thread computations of a tensor's stochastic-rounding stream
  int64_t quantized_blocks = 0;          // blocks of 8-bit moments stepped (each by one warp)
  int64_t last_blocks = 0;               // blocks that found themselves last and ran the epilogue
  int64_t skipped_launches = 0;          // launches that GradScaler's found_inf turned into no-ops
};

enum class Tally {
  kChunks,
  kPackedElements,
  kUnalignedPackArrays,
  kScalarElements,
  kCoefficients,
  kRoundingKeys,
  kQuantizedBlocks
};

struct GridPosition {
  int64_t block;
  int64_t blocks;
  int thread;
  int threads;
  ExecutionTally* tally;  // host launcher only

#if defined(__CUDACC__)
  __device__ __forceinline__ static GridPosition of_this_thread() {
    return GridPosition{static_cast<int64_t>(blockIdx.x), static_cast<int64_t>(gridDim.x),
                        static_cast<int>(threadIdx.x), static_cast<int>(blockDim.x), nullptr};
  }
#endif

  FUSEDADAM_HOST_DEVICE void count(Tally what, int64_t n = 1) const {
#if !defined(__CUDA_ARCH__)
    if (tally == nullptr) return;
    switch (what) {
      case Tally::kChunks: tally->chunks += n; break;
      case Tally::kPackedElements: tally->packed_elements += n; break;
      case Tally::kUnalignedPackArrays: tally->unaligned_pack_arrays += n; break;
      case Tally::kScalarElements: tally->scalar_elements += n; break;
      case Tally::kCoefficients: tally->coefficient_computations += n; break;
      case Tally::kRoundingKeys: tally->rounding_key_computations += n; break;
      case Tally::kQuantizedBlocks: tally->quantized_blocks += n; break;
    }
#else
    (void)what;
    (void)n;
#endif
  }
};

constexpr int kWarpSize = 32;

// The lanes of a warp that one call of a warp-synchronous kernel's body plays (a kernel whose lanes exchange values,
// kWarpSynchronous in persistent_launch.cuh). On a GPU a thread is one lane. The host launcher calls the body once per
// warp, and the body runs every lane's work up to an exchange, then the exchange, then every lane's work after it.
#if defined(__CUDA_ARCH__)
constexpr int kLanesPerCall = 1;
#else
constexpr int kLanesPerCall = kWarpSize;
#endif

// The largest of the warp's values, in every lane: shuffles on a GPU (every lane of the warp must call it), the lanes'
// values side by side on the host.
FUSEDADAM_HOST_DEVICE uint32_t warp_max(const uint32_t (&lane_values)[kLanesPerCall]) {
  uint32_t largest = lane_values[0];
#if defined(__CUDA_ARCH__)
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    const uint32_t other = __shfl_xor_sync(0xFFFFFFFFu, largest, offset);
    largest = other > largest ? other : largest;
  }
#else
  for (int lane = 1; lane < kLanesPerCall; ++lane) largest = lane_values[lane] > largest ? lane_values[lane] : largest;
#endif
  return largest;
}

// A word of the launch table or a kernel argument array that no thread writes during the launch.
template <typename T>
FUSEDADAM_HOST_DEVICE T read_only(const T* address) {
#if defined(__CUDA_ARCH__)
  return __ldg(address);
#else
  return *address;
#endif
}

// Tells the device compiler that `address` points to global memory. The arrays' addresses come from the
// launch table as integers, so without this every access is a generic LD/ST instead of LDG/STG.
template <typename T>
FUSEDADAM_HOST_DEVICE T* global(T* address) {
#if defined(__CUDA_ARCH__)
  __builtin_assume(__isGlobal(address));
#endif
  return address;
}

// One block's arrival at the end of a launch: true for exactly one block, the last of `blocks` to arrive, which
// also resets the counter so that the next launch (or a CUDA graph replay) starts from zero.
FUSEDADAM_HOST_DEVICE bool arrive_last(unsigned int* counter, int64_t blocks) {
#if defined(__CUDA_ARCH__)
  const unsigned int before = atomicAdd(counter, 1u);
#else
  const unsigned int before = __atomic_fetch_add(counter, 1u, __ATOMIC_ACQ_REL);
#endif
  const bool last = static_cast<int64_t>(before) == blocks - 1;
  if (last) *counter = 0u;
  return last;
}

}  // namespace fusedadam::cuda
