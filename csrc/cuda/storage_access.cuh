// Loading and storing the storage dtypes in their compute type, 16 bytes at a time where an array is aligned.
// Host and device alike: the host launcher runs these same functions.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "../tensor_table.h"
#include "execution.cuh"

namespace fusedadam::cuda {

template <DType kDType> struct StorageOf;
template <> struct StorageOf<DType::kFloat32> { using type = float; };
template <> struct StorageOf<DType::kFloat64> { using type = double; };
template <> struct StorageOf<DType::kFloat16> { using type = __half; };
template <> struct StorageOf<DType::kBFloat16> { using type = __nv_bfloat16; };
template <> struct StorageOf<DType::kMoment8Bit> { using type = uint8_t; };  // codes (moment_quantization.h)
template <DType kDType> using storage_t = typename StorageOf<kDType>::type;

template <typename Storage> struct Opmath { using type = float; };
template <> struct Opmath<double> { using type = double; };
template <typename Storage> using opmath_t = typename Opmath<Storage>::type;

FUSEDADAM_HOST_DEVICE float to_opmath(float x) { return x; }
FUSEDADAM_HOST_DEVICE double to_opmath(double x) { return x; }
FUSEDADAM_HOST_DEVICE float to_opmath(__half x) { return __half2float(x); }
FUSEDADAM_HOST_DEVICE float to_opmath(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename Storage> FUSEDADAM_HOST_DEVICE Storage from_opmath(opmath_t<Storage> x);
template <> FUSEDADAM_HOST_DEVICE float from_opmath<float>(float x) { return x; }
template <> FUSEDADAM_HOST_DEVICE double from_opmath<double>(double x) { return x; }
template <> FUSEDADAM_HOST_DEVICE __half from_opmath<__half>(float x) { return __float2half_rn(x); }
template <> FUSEDADAM_HOST_DEVICE __nv_bfloat16 from_opmath<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

// kSize consecutive elements, moved in 16-byte accesses when their array is aligned: one access for 4 fp32, 2 fp64 or
// 8 fp16 / bf16 (torch's kernels move only 8 bytes per access for 16-bit types), two for 8 fp32 beside 16-bit arrays;
// a pack of 8 bytes (4 fp16 / bf16) is one 8-byte access.
template <typename Storage, int kSize>
struct alignas(kSize * sizeof(Storage) >= 16 ? 16 : kSize * sizeof(Storage)) Pack {
  Storage values[kSize];
};

// Whether a pack can be moved as a whole: 4 or 8 bytes (one access), or a multiple of 16 (one access per 16 bytes).
template <typename Storage, int kSize>
constexpr bool kWholePack =
    kSize * sizeof(Storage) % 16 == 0 || kSize * sizeof(Storage) == 8 || kSize * sizeof(Storage) == 4;

// `vectorized`: the pack's first element is 16-byte aligned (then one access per 16 bytes), else one access per
// element. The choice is the same for every thread of a chunk, so the branch never diverges.
template <int kSize, typename Storage>
FUSEDADAM_HOST_DEVICE Pack<Storage, kSize> load_pack(const Storage* address, bool vectorized) {
  if constexpr (kWholePack<Storage, kSize>) {
    if (vectorized) return *global(reinterpret_cast<const Pack<Storage, kSize>*>(address));
  }
  Pack<Storage, kSize> pack;
#pragma unroll
  for (int k = 0; k < kSize; ++k) pack.values[k] = *global(address + k);
  return pack;
}

template <typename Storage, int kSize>
FUSEDADAM_HOST_DEVICE void store_pack(Storage* address, const Pack<Storage, kSize>& pack, bool vectorized) {
  if constexpr (kWholePack<Storage, kSize>) {
    if (vectorized) {
      *global(reinterpret_cast<Pack<Storage, kSize>*>(address)) = pack;
      return;
    }
  }
#pragma unroll
  for (int k = 0; k < kSize; ++k) *global(address + k) = pack.values[k];
}

FUSEDADAM_HOST_DEVICE bool aligned16(const void* address) { return (reinterpret_cast<uintptr_t>(address) % 16) == 0; }

// Whether packs of kSize elements starting at `address` may move whole.
template <int kSize, typename Storage>
FUSEDADAM_HOST_DEVICE bool pack_aligned(const Storage* address) {
  return reinterpret_cast<uintptr_t>(address) % alignof(Pack<Storage, kSize>) == 0;
}

}  // namespace fusedadam::cuda
