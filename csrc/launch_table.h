// The launch table: how one multi-tensor step is described to a device kernel (CUDA and Triton alike).
//
// One int64 buffer in device memory, written on the host from a TensorTable:
//   [ tensor rows: kTensorColumns words per tensor ][ chunk rows: kChunkColumns words per chunk ]
// A tensor row holds the addresses of p, g, m, v, vmax (0 unless amsgrad), numel, the addresses of the fp32
// master copy and the Kahan compensation buffer (0 unless that mode), the rounding salt, and with 8-bit moments the
// addresses of each moment's fp32 block absmaxes (0 otherwise). A chunk row names a tensor and the first element of a
// run of at most `chunk_size` elements of it; with 8-bit moments chunk_size is a multiple of the quantization block,
// so every block, and its absmax, belongs to one chunk. A persistent grid
// walks the chunk rows, so one launch covers any number of tensors: nothing is packed into kernel
// arguments, and the table's address stays fixed, which keeps the launch CUDA-graph safe.
//
// fusedadam/backends/device.py and the Triton kernel read these constants from the native module, so
// the layout is defined here only.
#pragma once

#include <cstdint>

namespace fusedadam::launch_table {

enum TensorColumn : int {
  kParam = 0,
  kGrad = 1,
  kExpAvg = 2,
  kExpAvgSq = 3,
  kMaxExpAvgSq = 4,
  kNumel = 5,
  kMaster = 6,
  kCompensation = 7,
  kSalt = 8,
  kExpAvgAbsmax = 9,
  kExpAvgSqAbsmax = 10,
  kMaxExpAvgSqAbsmax = 11,
};
constexpr int kTensorColumns = 12;

enum ChunkColumn : int { kTensorIndex = 0, kFirstElement = 1 };
constexpr int kChunkColumns = 2;

}  // namespace fusedadam::launch_table
