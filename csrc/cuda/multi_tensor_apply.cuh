// Multi-tensor apply over the launch table (csrc/launch_table.h): a persistent grid walks the chunk rows,
// so one launch covers any number of tensors of any size. Knows nothing of Adam: the functor does the work.
#pragma once

#include <cstdint>

#include "../launch_table.h"

namespace fusedadam::cuda {

struct LaunchTable {
  const int64_t* words;  // device memory, launch_table.h layout
  int64_t num_tensors;
  int64_t num_chunks;
  int64_t chunk_size;
};

// Calls f(tensor_index, tensor_row, first, end) for every chunk this block owns: chunks blockIdx.x,
// blockIdx.x + gridDim.x, ... Every thread of the block makes the same calls (the row is read through the
// cache by all of them), so f may use the whole block and __syncthreads.
template <typename ChunkFunctor>
__device__ __forceinline__ void for_each_chunk(const LaunchTable& table, ChunkFunctor&& f) {
  using namespace launch_table;
  const int64_t* chunk_rows = table.words + table.num_tensors * kTensorColumns;
  for (int64_t chunk = blockIdx.x; chunk < table.num_chunks; chunk += gridDim.x) {
    const int64_t* chunk_row = chunk_rows + chunk * kChunkColumns;
    const int64_t tensor = __ldg(chunk_row + kTensorIndex);
    const int64_t first = __ldg(chunk_row + kFirstElement);
    const int64_t* row = table.words + tensor * kTensorColumns;
    const int64_t numel = __ldg(row + kNumel);
    f(tensor, row, first, first + table.chunk_size < numel ? first + table.chunk_size : numel);
  }
}

// True in exactly one block of the launch: the last to arrive, after every other block has finished all
// of its memory accesses. It resets `counter`, so the next launch (or a CUDA graph replay) starts from 0.
__device__ __forceinline__ bool last_block_to_finish(unsigned int* counter) {
  __shared__ bool last;
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();  // this block's writes and reads are ordered before its arrival
    last = atomicAdd(counter, 1u) == gridDim.x - 1;
    if (last) {
      __threadfence();
      *counter = 0u;
    }
  }
  __syncthreads();
  return last;
}

// Blocks for a persistent launch of `kernel`: as many as fit on the device at once, never more than there
// are chunks, never zero (the last block also runs the epilogue).
int persistent_grid_size(const void* kernel, int threads, int device, int64_t num_chunks);

}  // namespace fusedadam::cuda
