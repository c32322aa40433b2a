// Eight bf16 values moved as one 16-byte word (uint4), converted to and from
// floats: the vector access the version-2 kernels share. Device code only.
#pragma once

#include <cuda_bf16.h>

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

}  // namespace gpucal::kernels
