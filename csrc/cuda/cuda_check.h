#pragma once

#include <stdexcept>
#include <string>

#include <cuda_runtime.h>

namespace fusedadam::cuda {

inline void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    throw std::runtime_error(std::string("fusedadam: ") + what + " failed: " + cudaGetErrorName(status) + ": " +
                             cudaGetErrorString(status));
  }
}

// True when `device` has an active primary context in this process, i.e. making it current creates nothing. Asked
// of the driver (cuDevicePrimaryCtxGetState, through the runtime's entry-point query, which creates no context);
// true when the driver cannot say.
inline bool has_primary_context(int device) {
  using DeviceGet = int (*)(int*, int);                            // CUresult cuDeviceGet(CUdevice*, int ordinal)
  using PrimaryContextState = int (*)(int, unsigned int*, int*);  // CUresult cuDevicePrimaryCtxGetState(...)
  static const auto entry = [](const char* symbol) -> void* {
    void* function = nullptr;
    cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
    if (cudaGetDriverEntryPointByVersion(symbol, &function, 12000, cudaEnableDefault, &found) != cudaSuccess ||
        found != cudaDriverEntryPointSuccess) {
      return nullptr;
    }
    return function;
  };
  static const auto device_get = reinterpret_cast<DeviceGet>(entry("cuDeviceGet"));
  static const auto state = reinterpret_cast<PrimaryContextState>(entry("cuDevicePrimaryCtxGetState"));
  int handle = 0;
  unsigned int flags = 0;
  int active = 1;
  if (device_get == nullptr || state == nullptr || device_get(&handle, device) != 0 || state(handle, &flags, &active) != 0) {
    return true;
  }
  return active != 0;
}

// Makes `device` current for the lifetime of the guard. Afterwards the caller's device is made current again only
// where that was a change and it costs nothing: on a thread that never used a GPU, cudaGetDevice says 0, and
// making GPU 0 current would create a context there (~0.5 GB) in every process of a one-GPU-per-process job.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    check(cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ != device) {
      check(cudaSetDevice(device), "cudaSetDevice");
      changed_ = true;
    }
  }
  ~DeviceGuard() {
    if (changed_ && has_primary_context(previous_)) cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
  bool changed_ = false;
};

}  // namespace fusedadam::cuda
