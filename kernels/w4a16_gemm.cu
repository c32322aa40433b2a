// W4A16 GEMM for decode batch sizes (see w4a16_gemm.hpp).
//
// v1, CUDA cores: one warp per output row n, eight rows per block; the warp
// walks K 256 values at a time (lane j takes packed word j: eight 4-bit
// codes, one 4-byte load, 128 contiguous bytes per warp), dequantizes them
// with the group's scale and zero, and multiplies them into up to eight
// activation rows at once (16-byte bf16 loads), so each weight byte is read
// once per 8 rows of M. Napkin math at M = 1 on a 14336 x 4096 layer: 29.4 MB
// of packed weights + 0.9 MB of scales and zeros against 117 MB in bf16, so
// about 3.9x less traffic than a bf16 GEMV. Tensor cores (mma.sync) are the
// next variant for M >= 16, once this one has been measured on a GPU.
#include <cuda_bf16.h>

#include <stdexcept>
#include <string>

#include "bf16x8.cuh"
#include "gpucal/kernels/cuda_check.hpp"
#include "gpucal/kernels/w4a16_gemm.hpp"

namespace gpucal::kernels {

namespace {

constexpr int rows_per_block = 8;  // warps
constexpr int m_tile = 8;          // activation rows per pass

// acc += x[0..8) . w[0..8): eight bf16 activations (one 16-byte load) against eight weights.
__device__ __forceinline__ void fma8(const __nv_bfloat16* x, const float (&w)[8], float& acc) {
  float f[8];
  unpack_bf16x8(*reinterpret_cast<const uint4*>(x), f);
#pragma unroll
  for (int i = 0; i < 8; ++i) acc = fmaf(f[i], w[i], acc);
}

// Sums each row's per-lane partials over the warp; lane 0 writes d[m0 + r][row].
template <int Rows>
__device__ __forceinline__ void store_rows(const float (&acc)[Rows], int rows, int lane, __nv_bfloat16* d, int m0, int n,
                                           int row) {
#pragma unroll
  for (int r = 0; r < Rows; ++r) {
    if (r >= rows) break;
    float v = acc[r];
#pragma unroll
    for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0) d[static_cast<std::int64_t>(m0 + r) * n + row] = __float2bfloat16_rn(v);  // [m][n]
  }
}

__global__ void __launch_bounds__(rows_per_block * 32)
    w4a16_gemv_kernel(const __nv_bfloat16* __restrict__ x, const std::uint32_t* __restrict__ packed,
                      const __nv_bfloat16* __restrict__ scales, const std::uint8_t* __restrict__ zeros,
                      __nv_bfloat16* __restrict__ d, int m, int n, int k, int group) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row = blockIdx.x * rows_per_block + warp;
  const int m0 = blockIdx.y * m_tile;
  if (row >= n) return;
  const int words = k / 8, groups = (k + group - 1) / group;
  const std::uint32_t* wrow = packed + static_cast<std::int64_t>(row) * words;  // [n][k / 8]
  const int rows = min(m_tile, m - m0);

  float acc[m_tile];
#pragma unroll
  for (int r = 0; r < m_tile; ++r) acc[r] = 0;

  for (int j = lane; j < words; j += 32) {
    const std::uint32_t codes = wrow[j];
    const int g = (j * 8) / group;  // a group is a multiple of 8 wide, so one word sits in one group
    const float s = __bfloat162float(scales[static_cast<std::int64_t>(row) * groups + g]);
    const float z = static_cast<float>(zeros[static_cast<std::int64_t>(row) * groups + g]);
    float w[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) w[i] = (static_cast<float>((codes >> (4 * i)) & 0xFu) - z) * s;
#pragma unroll
    for (int r = 0; r < m_tile; ++r) {
      if (r >= rows) break;
      fma8(x + static_cast<std::int64_t>(m0 + r) * k + j * 8, w, acc[r]);
    }
  }
  store_rows(acc, rows, lane, d, m0, n, row);
}

// ---- w4a16_gemv_kernel_v2 ----
// Why v2: v1 keeps one 4-byte weight load per lane in flight, re-reads the
// weights once per 8 activation rows and converts codes with a shift, mask
// and int-to-float per value; v2 loads 16 bytes (four words, 32 codes, one
// group's share) per lane with two loads in flight, holds up to 16 activation
// rows per pass, and converts with the magic number 2^23 (OR the code into
// the mantissa of 8388608.0f, subtract 8388608 + zero).

constexpr int v2_rows_per_block = 8;  // warps, one output row each
constexpr int v2_unroll = 2;          // 16-byte weight loads in flight per lane

template <int MT>
__global__ void __launch_bounds__(v2_rows_per_block * 32)
    w4a16_gemv_kernel_v2(const __nv_bfloat16* __restrict__ x, const std::uint32_t* __restrict__ packed,
                         const __nv_bfloat16* __restrict__ scales, const std::uint8_t* __restrict__ zeros,
                         __nv_bfloat16* __restrict__ d, int m, int n, int k, int group) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row = blockIdx.x * v2_rows_per_block + warp;
  const int m0 = blockIdx.y * MT;
  if (row >= n) return;
  const int words = k / 8, groups = (k + group - 1) / group, quads = words / 4;  // a quad: 4 words, 32 codes
  const uint4* wrow = reinterpret_cast<const uint4*>(packed + static_cast<std::int64_t>(row) * words);  // 16-byte aligned: words % 4 == 0
  const int rows = min(MT, m - m0);

  float acc[MT];
#pragma unroll
  for (int r = 0; r < MT; ++r) acc[r] = 0;

  for (int q0 = lane; q0 < quads; q0 += 32 * v2_unroll) {
    uint4 wq[v2_unroll];
#pragma unroll
    for (int u = 0; u < v2_unroll; ++u) {
      const int q = q0 + u * 32;
      wq[u] = q < quads ? wrow[q] : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < v2_unroll; ++u) {
      const int q = q0 + u * 32;
      if (q >= quads) break;
      const int g = (q * 32) / group;  // a group is a multiple of 32 wide: the quad sits in one group
      const float s = __bfloat162float(scales[static_cast<std::int64_t>(row) * groups + g]);
      const float zf = 8388608.0f + static_cast<float>(zeros[static_cast<std::int64_t>(row) * groups + g]);
      const std::uint32_t word[4] = {wq[u].x, wq[u].y, wq[u].z, wq[u].w};
#pragma unroll
      for (int wi = 0; wi < 4; ++wi) {
        float w[8];
#pragma unroll
        for (int i = 0; i < 8; ++i) w[i] = (__uint_as_float(0x4B000000u | ((word[wi] >> (4 * i)) & 0xFu)) - zf) * s;
        const std::int64_t col = static_cast<std::int64_t>(q) * 32 + wi * 8;
#pragma unroll
        for (int r = 0; r < MT; ++r) {
          if (r >= rows) break;
          fma8(x + static_cast<std::int64_t>(m0 + r) * k + col, w, acc[r]);
        }
      }
    }
  }
  store_rows(acc, rows, lane, d, m0, n, row);
}

template <int MT>
void launch_v2(const void* x, const std::uint32_t* packed, const void* scales, const std::uint8_t* zeros, void* d, int m,
               int n, int k, int group, cudaStream_t stream) {
  const dim3 grid((n + v2_rows_per_block - 1) / v2_rows_per_block, (m + MT - 1) / MT);
  w4a16_gemv_kernel_v2<MT><<<grid, v2_rows_per_block * 32, 0, stream>>>(
      static_cast<const __nv_bfloat16*>(x), packed, static_cast<const __nv_bfloat16*>(scales), zeros,
      static_cast<__nv_bfloat16*>(d), m, n, k, group);
  GPUCAL_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void w4a16_gemm_v2(const void* x, const std::uint32_t* packed, const void* scales, const std::uint8_t* zeros, void* d,
                   int m, int n, int k, int group, cudaStream_t stream) {
  if (m < 0 || n < 0 || k <= 0 || k % 8 || group <= 0 || group % 8)
    throw std::invalid_argument("w4a16_gemm_v2: k and group must be positive multiples of 8 (k=" + std::to_string(k) +
                                ", group=" + std::to_string(group) + ")");
  if (m == 0 || n == 0) return;
  if (k % 32 || group % 32) {  // off v2's 32-code grid: version 1
    w4a16_gemm(x, packed, scales, zeros, d, m, n, k, group, stream);
    return;
  }
  // The smallest M tile that holds the batch, 16 rows per pass beyond.
  if (m <= 1) launch_v2<1>(x, packed, scales, zeros, d, m, n, k, group, stream);
  else if (m <= 2) launch_v2<2>(x, packed, scales, zeros, d, m, n, k, group, stream);
  else if (m <= 4) launch_v2<4>(x, packed, scales, zeros, d, m, n, k, group, stream);
  else if (m <= 8) launch_v2<8>(x, packed, scales, zeros, d, m, n, k, group, stream);
  else launch_v2<16>(x, packed, scales, zeros, d, m, n, k, group, stream);
}

void w4a16_gemm(const void* x, const std::uint32_t* packed, const void* scales, const std::uint8_t* zeros, void* d,
                int m, int n, int k, int group, cudaStream_t stream) {
  if (m < 0 || n < 0 || k <= 0 || k % 8 || group <= 0 || group % 8)
    throw std::invalid_argument("w4a16_gemm: k and group must be positive multiples of 8 (k=" + std::to_string(k) +
                                ", group=" + std::to_string(group) + ")");
  if (m == 0 || n == 0) return;
  const dim3 grid((n + rows_per_block - 1) / rows_per_block, (m + m_tile - 1) / m_tile);
  w4a16_gemv_kernel<<<grid, rows_per_block * 32, 0, stream>>>(
      static_cast<const __nv_bfloat16*>(x), packed, static_cast<const __nv_bfloat16*>(scales), zeros,
      static_cast<__nv_bfloat16*>(d), m, n, k, group);
  GPUCAL_CUDA_CHECK(cudaGetLastError());
}

}  // namespace gpucal::kernels
