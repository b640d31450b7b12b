// Runs a persistent multi-tensor kernel: on the GPU as one launch, or on the host by playing every block and every
// thread of the grid the GPU would get. Knows nothing of Adam.
//
// A Kernel is a struct with
//   using Args;                                        plain values and pointers, in the memory the kernel runs on
//   static bool skipped(const Args&);                  true when the whole launch must change nothing
//   static constexpr bool kWarpSynchronous;           whether the lanes of a warp exchange values (warp_max)
//   static constexpr int kMinBlocksPerSm;             its launch bounds: resident blocks per SM (kMinBlocksPerSm below
//                                                     unless it needs more registers)
//   static void body(const GridPosition&, const Args&);      a thread's work (a warp's, on the host, when
//                                                            kWarpSynchronous: execution.cuh kLanesPerCall); no
//                                                            communication between a block's warps
//   static void epilogue(const GridPosition&, const Args&);  run by every thread of the last block to finish
// all __host__ __device__, and Args has `unsigned int* done_counter` (zero between launches).
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "execution.cuh"
#include "multi_tensor_apply.cuh"

#if defined(__CUDACC__)
#include <cuda_runtime.h>

#include "cuda_check.h"
#endif

namespace fusedadam::cuda {

constexpr int kThreadsPerBlock = 256;
// Resident blocks per SM the compiler must allow (__launch_bounds__), per architecture: on sm_80 and sm_90, 4 x 256
// threads, half of an SM's 2048, which caps a kernel at 64 registers per thread; ptxas fits every kernel there. For
// sm_75 (whose 1024 threads 4 blocks would fill) it spilled at 64, and fits at 3 (80 registers); for sm_100 / sm_110
// it spilled at 64 and at 80 (up to 48 bytes), and for sm_120 at 80 (up to 60): those get 2 (128 registers). Two
// blocks of 256 threads with 4-7 loads of 16 bytes each in flight hold 32-57 KB per SM, about what a B200's 8 TB/s
// needs over ~0.6 us of latency. tests/test_kernel_resources.py checks that no kernel spills on any architecture built.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 1000
constexpr int kMinBlocksPerSm = 2;
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
constexpr int kMinBlocksPerSm = 3;
#else
constexpr int kMinBlocksPerSm = 4;
#endif

#if defined(__CUDACC__)
// True in exactly one block of the launch: the last to arrive, after every other block has finished all of its
// memory accesses (each block's reads of what the epilogue writes happen before its arrival).
__device__ __forceinline__ bool last_block_to_finish(const GridPosition& at, unsigned int* counter) {
  __shared__ bool last;
  __syncthreads();
  if (at.thread == 0) {
    __threadfence();  // this block's writes and reads are ordered before its arrival
    last = arrive_last(counter, at.blocks);
    if (last) __threadfence();  // and every other block's before the epilogue
  }
  __syncthreads();
  return last;
}

template <typename Kernel>
__global__ void __launch_bounds__(kThreadsPerBlock, Kernel::kMinBlocksPerSm)
    persistent_kernel(typename Kernel::Args args) {
  if (Kernel::skipped(args)) return;
  const GridPosition at = GridPosition::of_this_thread();
  Kernel::body(at, args);
  if (last_block_to_finish(at, args.done_counter)) Kernel::epilogue(at, args);
}

// The two inputs of persistent_grid_blocks for a compiled kernel on `device`, from the driver (cached per kernel and
// device: the queries cost microseconds).
struct Residency {
  int64_t sms;
  int64_t blocks_per_sm;
};
Residency residency(const void* kernel, int device);

// Queues one launch of Kernel on `stream` of `device` (the caller has made `device` current).
template <typename Kernel>
void launch_on_device(const typename Kernel::Args& args, int64_t num_chunks, int device, cudaStream_t stream) {
  const Residency resident = residency(reinterpret_cast<const void*>(&persistent_kernel<Kernel>), device);
  const int64_t blocks = persistent_grid_blocks(resident.sms, resident.blocks_per_sm, num_chunks);
  persistent_kernel<Kernel><<<static_cast<unsigned int>(blocks), kThreadsPerBlock, 0, stream>>>(args);
  check(cudaGetLastError(), "persistent kernel launch");
}
#endif

// How the host launcher shapes the grid: the same formula as on a GPU with `sms` SMs that each hold `blocks_per_sm`
// blocks of this kernel, and the order in which the blocks run (a permutation drawn from `order_seed`, so no result
// may depend on block order).
struct HostGrid {
  int64_t sms;
  int64_t blocks_per_sm;
  uint64_t order_seed;
};

// Plays the launch on the host: every block in a shuffled order, each block's threads one after the other (the
// kernels keep no state shared between a block's warps; a warp-synchronous kernel's call plays a whole warp), then the
// block's arrival and, for the last block, the epilogue on every one of its threads.
template <typename Kernel>
ExecutionTally play_on_host(const typename Kernel::Args& args, int64_t num_chunks, const HostGrid& grid) {
  ExecutionTally tally;
  if (Kernel::skipped(args)) {
    tally.skipped_launches = 1;
    return tally;
  }
  const int64_t blocks = persistent_grid_blocks(grid.sms, grid.blocks_per_sm, num_chunks);
  std::vector<int64_t> order(static_cast<size_t>(blocks));
  std::iota(order.begin(), order.end(), int64_t{0});
  std::shuffle(order.begin(), order.end(), std::mt19937_64(grid.order_seed));
  for (const int64_t block : order) {
    for (int thread = 0; thread < kThreadsPerBlock; thread += Kernel::kWarpSynchronous ? kLanesPerCall : 1) {
      Kernel::body(GridPosition{block, blocks, thread, kThreadsPerBlock, &tally}, args);
    }
    ++tally.blocks;
    if (arrive_last(args.done_counter, blocks)) {
      ++tally.last_blocks;
      for (int thread = 0; thread < kThreadsPerBlock; ++thread) {
        Kernel::epilogue(GridPosition{block, blocks, thread, kThreadsPerBlock, &tally}, args);
      }
    }
  }
  return tally;
}

}  // namespace fusedadam::cuda
