// Loading and storing the storage dtypes in their compute type, 16 bytes at a time where aligned.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace fusedadam::cuda {

template <typename Storage> struct Opmath { using type = float; };
template <> struct Opmath<double> { using type = double; };
template <typename Storage> using opmath_t = typename Opmath<Storage>::type;

__device__ __forceinline__ float to_opmath(float x) { return x; }
__device__ __forceinline__ double to_opmath(double x) { return x; }
__device__ __forceinline__ float to_opmath(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_opmath(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename Storage> __device__ __forceinline__ Storage from_opmath(opmath_t<Storage> x);
template <> __device__ __forceinline__ float from_opmath<float>(float x) { return x; }
template <> __device__ __forceinline__ double from_opmath<double>(double x) { return x; }
template <> __device__ __forceinline__ __half from_opmath<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_opmath<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

// kSize elements of one 16-byte access: 4 fp32, 2 fp64, 8 fp16 or bf16 (torch's kernels move 4, only 8
// bytes for 16-bit types).
template <typename Storage>
struct alignas(16) Vector {
  static constexpr int kSize = 16 / sizeof(Storage);
  Storage values[kSize];
};

template <typename Storage>
__device__ __forceinline__ Vector<Storage> load_vector(const Storage* address) {
  return *reinterpret_cast<const Vector<Storage>*>(address);
}

template <typename Storage>
__device__ __forceinline__ void store_vector(Storage* address, const Vector<Storage>& vector) {
  *reinterpret_cast<Vector<Storage>*>(address) = vector;
}

__device__ __forceinline__ bool aligned16(const void* address) {
  return (reinterpret_cast<uintptr_t>(address) % 16) == 0;
}

}  // namespace fusedadam::cuda
