// Loading and storing the storage dtypes in their compute type, 16 bytes at a time where aligned.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "../tensor_table.h"

namespace fusedadam::cuda {

template <DType kDType> struct StorageOf;
template <> struct StorageOf<DType::kFloat32> { using type = float; };
template <> struct StorageOf<DType::kFloat64> { using type = double; };
template <> struct StorageOf<DType::kFloat16> { using type = __half; };
template <> struct StorageOf<DType::kBFloat16> { using type = __nv_bfloat16; };
template <DType kDType> using storage_t = typename StorageOf<kDType>::type;

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


// kSize consecutive elements moved in 16-byte accesses: one access for 4 fp32, 2 fp64 or 8 fp16 / bf16
// (torch's kernels move only 8 bytes per access for 16-bit types), two for 8 fp32 beside 16-bit arrays.
template <typename Storage, int kSize>
struct alignas(16) Pack {
  Storage values[kSize];
};

template <int kSize, typename Storage>
__device__ __forceinline__ Pack<Storage, kSize> load_pack(const Storage* address) {
  static_assert(kSize * sizeof(Storage) % 16 == 0, "a pack is a whole number of 16-byte accesses");
  return *reinterpret_cast<const Pack<Storage, kSize>*>(address);
}

template <typename Storage, int kSize>
__device__ __forceinline__ void store_pack(Storage* address, const Pack<Storage, kSize>& pack) {
  *reinterpret_cast<Pack<Storage, kSize>*>(address) = pack;
}

__device__ __forceinline__ bool aligned16(const void* address) {
  return (reinterpret_cast<uintptr_t>(address) % 16) == 0;
}

}  // namespace fusedadam::cuda
