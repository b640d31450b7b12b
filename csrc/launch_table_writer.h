// Host side of the launch table (launch_table.h): its size, and writing it from a TensorTable.
#pragma once

#include <cstdint>

#include "launch_table.h"
#include "tensor_table.h"

namespace fusedadam::launch_table {

inline int64_t num_chunks(const TensorTable& table, int64_t chunk_size) {
  int64_t chunks = 0;
  for (const auto& t : table.tensors) chunks += (t.numel + chunk_size - 1) / chunk_size;
  return chunks;
}

inline int64_t num_words(const TensorTable& table, int64_t chunk_size) {
  return static_cast<int64_t>(table.tensors.size()) * kTensorColumns + num_chunks(table, chunk_size) * kChunkColumns;
}

struct Written {
  int64_t num_chunks;
  bool aligned16;  // every address is a multiple of 16 bytes: kernels may use 16-byte vector accesses
};

// Writes the whole table to `out` (num_words(table, chunk_size) words of host memory).
inline Written write(const TensorTable& table, int64_t chunk_size, int64_t* out) {
  uintptr_t address_bits = 0;
  int64_t* row = out;
  for (const auto& t : table.tensors) {
    const uintptr_t addresses[] = {reinterpret_cast<uintptr_t>(t.param), reinterpret_cast<uintptr_t>(t.grad),
                                   reinterpret_cast<uintptr_t>(t.exp_avg), reinterpret_cast<uintptr_t>(t.exp_avg_sq),
                                   reinterpret_cast<uintptr_t>(t.max_exp_avg_sq), reinterpret_cast<uintptr_t>(t.master),
                                   reinterpret_cast<uintptr_t>(t.compensation),
                                   reinterpret_cast<uintptr_t>(t.exp_avg_absmax),
                                   reinterpret_cast<uintptr_t>(t.exp_avg_sq_absmax),
                                   reinterpret_cast<uintptr_t>(t.max_exp_avg_sq_absmax)};
    const int columns[] = {kParam,  kGrad,         kExpAvg,         kExpAvgSq,         kMaxExpAvgSq,
                           kMaster, kCompensation, kExpAvgAbsmax,   kExpAvgSqAbsmax,   kMaxExpAvgSqAbsmax};
    static_assert(sizeof(addresses) / sizeof(addresses[0]) == sizeof(columns) / sizeof(columns[0]));
    for (size_t k = 0; k < sizeof(columns) / sizeof(columns[0]); ++k) {
      row[columns[k]] = static_cast<int64_t>(addresses[k]);
      address_bits |= addresses[k];
    }
    row[kNumel] = t.numel;
    row[kSalt] = t.salt;
    row += kTensorColumns;
  }
  int64_t chunks = 0;
  for (size_t i = 0; i < table.tensors.size(); ++i) {
    for (int64_t first = 0; first < table.tensors[i].numel; first += chunk_size, ++chunks) {
      row[kTensorIndex] = static_cast<int64_t>(i);
      row[kFirstElement] = first;
      row += kChunkColumns;
    }
  }
  return Written{chunks, (address_bits % 16) == 0};
}

}  // namespace fusedadam::launch_table
