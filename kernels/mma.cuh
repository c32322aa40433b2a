// One warp-wide bf16 tensor-core multiply-accumulate (mma.sync m16n8k16,
// FP32 accumulators; sm_80 and newer) and the 32-bit <-> bf16x2 moves the
// tensor-core kernels share. Operand layouts: gpucal/kernels/mma_layout.hpp.
// Device code only.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace gpucal::kernels {

/// c += A (16 x 16, four registers) . B (16 x 8, two registers).
__device__ __forceinline__ void mma_bf16_16816(float (&c)[4], const std::uint32_t (&a)[4], std::uint32_t b0, std::uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ __nv_bfloat162 bits_as_bf162(std::uint32_t v) {
  __nv_bfloat162 h;
  static_assert(sizeof h == sizeof v);
  __builtin_memcpy(&h, &v, sizeof v);
  return h;
}

__device__ __forceinline__ std::uint32_t bf162_as_bits(__nv_bfloat162 h) {
  std::uint32_t v;
  __builtin_memcpy(&v, &h, sizeof v);
  return v;
}

/// Two floats as one bf16x2 register, `lo` in the low half.
__device__ __forceinline__ std::uint32_t pack_bf162(float lo, float hi) { return bf162_as_bits(__floats2bfloat162_rn(lo, hi)); }

}  // namespace gpucal::kernels
