// Butterfly reductions over the lanes of a warp or of an aligned group of
// `Width` lanes (a power of two up to 32): every lane ends with the group's
// sum or maximum. Offsets run from Width / 2 down to 1. Device code only.
#pragma once

namespace gpucal::kernels {

template <int Width = 32>
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = Width / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <int Width = 32>
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = Width / 2; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

}  // namespace gpucal::kernels
