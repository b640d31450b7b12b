#include "cuda_runtime.h"

#include "cuda_check.h"

#ifndef FUSEDADAM_CUDA_ARCH_LIST
#define FUSEDADAM_CUDA_ARCH_LIST "unknown"
#endif

namespace fusedadam::cuda {
namespace {

// Grid-stride loop over 16-byte vectors: the same bytes-moved pattern as one Adam step.
__global__ void bandwidth_probe_kernel(uint4* __restrict a, uint4* __restrict b, uint4* __restrict c,
                                       const uint4* __restrict d, int64_t vectors) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < vectors; i += stride) {
    const uint4 x = d[i];
    uint4 va = a[i], vb = b[i], vc = c[i];
    va.x ^= x.x; va.y ^= x.y; va.z ^= x.z; va.w ^= x.w;
    vb.x ^= x.x; vb.y ^= x.y; vb.z ^= x.z; vb.w ^= x.w;
    vc.x ^= x.x; vc.y ^= x.y; vc.z ^= x.z; vc.w ^= x.w;
    a[i] = va;
    b[i] = vb;
    c[i] = vc;
  }
}

__global__ void bandwidth_probe_tail(uint32_t* a, uint32_t* b, uint32_t* c, const uint32_t* d, int64_t begin,
                                     int64_t end) {
  const int64_t i = begin + static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < end) {
    a[i] ^= d[i];
    b[i] ^= d[i];
    c[i] ^= d[i];
  }
}

}  // namespace

int device_count() {
  int count = 0;
  check(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
  return count;
}

int driver_version() {
  int version = 0;
  if (cudaDriverGetVersion(&version) != cudaSuccess) return 0;
  return version;
}

int runtime_version() {
  int version = 0;
  check(cudaRuntimeGetVersion(&version), "cudaRuntimeGetVersion");
  return version;
}

std::string compiled_archs() { return FUSEDADAM_CUDA_ARCH_LIST; }

std::string device_name(int device) {
  cudaDeviceProp prop;
  check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  return prop.name;
}

bool primary_context_active(int device) { return has_primary_context(device); }

bool stream_is_capturing(int device, uintptr_t stream) {
  DeviceGuard guard(device);
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  check(cudaStreamIsCapturing(reinterpret_cast<cudaStream_t>(stream), &status), "cudaStreamIsCapturing");
  return status != cudaStreamCaptureStatusNone;
}

void bandwidth_probe(int device, uintptr_t stream, uint32_t* a, uint32_t* b, uint32_t* c, const uint32_t* d,
                     int64_t words) {
  DeviceGuard guard(device);
  int sms = 0;
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute");
  auto s = reinterpret_cast<cudaStream_t>(stream);
  constexpr int kThreads = 512;
  const bool aligned = ((reinterpret_cast<uintptr_t>(a) | reinterpret_cast<uintptr_t>(b) |
                         reinterpret_cast<uintptr_t>(c) | reinterpret_cast<uintptr_t>(d)) % 16) == 0;
  const int64_t vectors = aligned ? words / 4 : 0;
  if (vectors > 0) {
    bandwidth_probe_kernel<<<sms * 4, kThreads, 0, s>>>(reinterpret_cast<uint4*>(a), reinterpret_cast<uint4*>(b),
                                                       reinterpret_cast<uint4*>(c),
                                                       reinterpret_cast<const uint4*>(d), vectors);
    check(cudaGetLastError(), "bandwidth_probe_kernel launch");
  }
  const int64_t tail = words - vectors * 4;
  if (tail > 0) {
    const int blocks = static_cast<int>((tail + kThreads - 1) / kThreads);
    bandwidth_probe_tail<<<blocks, kThreads, 0, s>>>(a, b, c, d, vectors * 4, words);
    check(cudaGetLastError(), "bandwidth_probe_tail launch");
  }
}

}  // namespace fusedadam::cuda
