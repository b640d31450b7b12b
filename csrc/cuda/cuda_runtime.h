// What the CUDA side of the native module offers without torch: device queries and the GPU
// bandwidth probe. Every function throws std::runtime_error carrying CUDA's own error text, which
// the bindings turn into a Python RuntimeError.
#pragma once

#include <cstdint>
#include <string>

namespace fusedadam::cuda {

int device_count();        // throws when there is no driver or no device
int driver_version();      // 0 when no driver is installed
int runtime_version();     // the statically linked runtime
std::string compiled_archs();  // e.g. "sm_80 sm_90 compute_90"
std::string device_name(int device);

// Whether `device` has an active primary context in this process (cuda_check.h), for tests.
bool primary_context_active(int device);

// Whether `stream` (a cudaStream_t of `device`) is capturing a CUDA graph.
bool stream_is_capturing(int device, uintptr_t stream);

// Adam's access pattern on the GPU (4 arrays read, 3 written in place), queued on `stream` of `device`.
void bandwidth_probe(int device, uintptr_t stream, uint32_t* a, uint32_t* b, uint32_t* c, const uint32_t* d,
                     int64_t words);

}  // namespace fusedadam::cuda
