#include <map>
#include <mutex>
#include <utility>

#include "cuda_check.h"
#include "multi_tensor_apply.cuh"

namespace fusedadam::cuda {

int persistent_grid_size(const void* kernel, int threads, int device, int64_t num_chunks) {
  static std::mutex mutex;
  static std::map<std::pair<const void*, int>, int> resident_blocks;  // occupancy queries cost microseconds
  int resident = 0;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto found = resident_blocks.find({kernel, device});
    if (found != resident_blocks.end()) {
      resident = found->second;
    } else {
      int sms = 0, per_sm = 0;
      check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute");
      check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, 0),
            "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
      resident = sms * (per_sm > 0 ? per_sm : 1);
      resident_blocks[{kernel, device}] = resident;
    }
  }
  const int64_t blocks = num_chunks < resident ? num_chunks : resident;
  return blocks > 0 ? static_cast<int>(blocks) : 1;
}

}  // namespace fusedadam::cuda
