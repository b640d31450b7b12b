// Multi-tensor apply on the CPU: one OpenMP region for all tensors of a table. Knows nothing of Adam.
//
// The tensors are seen as one concatenated index space [0, total_numel). Each thread gets one
// contiguous, equally sized slice of it (cut at cache-line multiples, so no two threads write the
// same line), and walks the tensors that slice covers. That balances a 50M-element tensor and 5000
// tiny ones alike, and streams memory in order, which is what the hardware prefetchers like.
#pragma once

#include <algorithm>
#include <cstdint>

#include <omp.h>

#include "../tensor_table.h"

namespace fusedadam::cpu {

// Below this many elements per thread, waking another thread costs more than it saves.
constexpr int64_t kMinElementsPerThread = 1 << 15;
// Slice boundaries are multiples of this many elements: 128 bytes even for 16-bit storage.
constexpr int64_t kSliceAlignment = 64;

inline int threads_for(int64_t total_numel, int max_threads) {
  const int64_t useful = (total_numel + kMinElementsPerThread - 1) / kMinElementsPerThread;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(max_threads, useful)));
}

// Calls span(tensor_index, begin, end) for every piece of every tensor, each piece in exactly one thread. A piece
// begins at a multiple of `granule` elements from its tensor's start (8-bit moments: a thread owns whole blocks).
template <typename SpanFn>
void parallel_for_each_span(const TensorTable& table, int max_threads, int64_t granule, SpanFn&& span) {
  const int64_t total = table.total_numel();
  if (total == 0) return;
  const int num_threads = threads_for(total, max_threads);
  const auto& first = table.first_element;

#pragma omp parallel num_threads(num_threads)
  {
    const int64_t threads = omp_get_num_threads();
    const int64_t thread = omp_get_thread_num();
    // Non-decreasing in t, and the same function for the thread that ends at a boundary and the one that begins there.
    auto boundary = [&](int64_t t) {
      if (t == threads) return total;
      int64_t at = std::min(total, total * t / threads / kSliceAlignment * kSliceAlignment);
      if (granule > 1) {
        const int64_t i = std::upper_bound(first.begin(), first.end(), at) - first.begin() - 1;
        at = first[i] + (at - first[i]) / granule * granule;
      }
      return at;
    };
    const int64_t slice_begin = boundary(thread);
    const int64_t slice_end = boundary(thread + 1);
    if (slice_begin < slice_end) {
      // The tensor holding slice_begin: the last i with first[i] <= slice_begin (skipping empty ones).
      int64_t i = std::upper_bound(first.begin(), first.end(), slice_begin) - first.begin() - 1;
      for (int64_t pos = slice_begin; pos < slice_end; ++i) {
        const int64_t tensor_end = first[i + 1];
        if (tensor_end <= pos) continue;  // empty tensor
        const int64_t stop = std::min(tensor_end, slice_end);
        span(i, pos - first[i], stop - first[i]);
        pos = stop;
      }
    }
  }
}

}  // namespace fusedadam::cpu
