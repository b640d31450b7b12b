// Multi-tensor apply over the launch table (csrc/launch_table.h): a persistent grid walks the chunk rows, so one
// launch covers any number of tensors of any size. Knows nothing of Adam: the functor does the work.
#pragma once

#include <cstdint>

#include "../launch_table.h"
#include "execution.cuh"

namespace fusedadam::cuda {

struct LaunchTable {
  const int64_t* words;  // launch_table.h layout, in the memory the kernel runs on
  int64_t num_tensors;
  int64_t num_chunks;
  int64_t chunk_size;
};

// The chunks of one block: a contiguous range, [block * chunks / blocks, (block + 1) * chunks / blocks). Neighbouring
// chunks mostly belong to one tensor, so a block meets few tensor boundaries and its threads stream memory in order
// (dealing chunks round-robin made every chunk of a tensor under blocks x chunk_size elements a new tensor).
struct ChunkRange {
  int64_t begin;
  int64_t end;
};

FUSEDADAM_HOST_DEVICE ChunkRange chunks_of_block(int64_t block, int64_t blocks, int64_t num_chunks) {
  return ChunkRange{num_chunks * block / blocks, num_chunks * (block + 1) / blocks};
}

// Calls f(tensor_index, tensor_row, first, end) for every chunk of this thread's block. Every thread of the block
// makes the same calls (the rows are read through the read-only cache by all of them), so f may divide a chunk
// among the block's threads.
template <typename ChunkFunctor>
FUSEDADAM_HOST_DEVICE void for_each_chunk(const GridPosition& at, const LaunchTable& table, ChunkFunctor&& f) {
  using namespace launch_table;
  const int64_t* chunk_rows = table.words + table.num_tensors * kTensorColumns;
  const ChunkRange range = chunks_of_block(at.block, at.blocks, table.num_chunks);
  for (int64_t chunk = range.begin; chunk < range.end; ++chunk) {
    const int64_t* chunk_row = chunk_rows + chunk * kChunkColumns;
    const int64_t tensor = read_only(chunk_row + kTensorIndex);
    const int64_t first = read_only(chunk_row + kFirstElement);
    const int64_t* row = table.words + tensor * kTensorColumns;
    const int64_t numel = read_only(row + kNumel);
    if (at.thread == 0) at.count(Tally::kChunks);
    f(tensor, row, first, first + table.chunk_size < numel ? first + table.chunk_size : numel);
  }
}

// Blocks for a persistent launch: as many as are resident at once (`sms` x `blocks_per_sm`, the compiled kernel's
// occupancy), never more than there are chunks, never zero (the last block also runs the epilogue). The GPU launcher
// asks the driver for both inputs; the host launcher takes them as arguments.
FUSEDADAM_HOST_DEVICE int64_t persistent_grid_blocks(int64_t sms, int64_t blocks_per_sm, int64_t num_chunks) {
  const int64_t resident = sms * (blocks_per_sm > 0 ? blocks_per_sm : 1);
  const int64_t blocks = num_chunks < resident ? num_chunks : resident;
  return blocks > 0 ? blocks : 1;
}

}  // namespace fusedadam::cuda
