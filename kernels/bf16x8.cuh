// Eight values moved as one word and converted to floats: bf16 as a 16-byte
// word (uint4, to and from floats), fp8 e4m3 as an 8-byte word (uint2, times
// its scale, two values per conversion): the vector accesses the version-2
// and tensor-core kernels share. Device code only.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

namespace gpucal::kernels {

__device__ __forceinline__ void unpack_bf16x8(const uint4& r, float (&f)[8]) {
  const auto* h = reinterpret_cast<const __nv_bfloat162*>(&r);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 v = __bfloat1622float2(h[i]);
    f[2 * i] = v.x;
    f[2 * i + 1] = v.y;
  }
}

__device__ __forceinline__ uint4 pack_bf16x8(const float (&f)[8]) {
  uint4 r;
  auto* h = reinterpret_cast<__nv_bfloat162*>(&r);
#pragma unroll
  for (int i = 0; i < 4; ++i) h[i] = __floats2bfloat162_rn(f[2 * i], f[2 * i + 1]);
  return r;
}

__device__ __forceinline__ void unpack_fp8x8(const uint2& r, float (&f)[8], float scale) {
  const auto* p = reinterpret_cast<const __nv_fp8x2_storage_t*>(&r);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 v = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2(p[i], __NV_E4M3)));
    f[2 * i] = v.x * scale;
    f[2 * i + 1] = v.y * scale;
  }
}

}  // namespace gpucal::kernels
