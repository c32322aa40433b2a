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

#include <algorithm>
#include <stdexcept>
#include <string>

#include "bf16x8.cuh"
#include "gpucal/kernels/cuda_check.hpp"
#include "gpucal/kernels/device_query.hpp"
#include "gpucal/kernels/mma_layout.hpp"
#include "gpucal/kernels/w4a16_gemm.hpp"
#include "gpucal/kernels/w4a16_layout.hpp"
#include "mma.cuh"
#include "warp_reduce.cuh"

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
    const float v = warp_sum(acc[r]);
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
__global__ void __launch_bounds__(v2_rows_per_block * 32, 2)
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


// ---- w4a16_mma_kernel_v3 ----
// Why v3: v1 and v2 multiply on CUDA cores, so from M = 16 they fall behind a
// bf16 tensor-core GEMM; v3 feeds the tensor cores (mma.sync m16n8k16) with
// weights decoded straight into B registers from the offline-reordered tiles
// of w4a16_layout.hpp, all 16 x m_tiles activation rows of a CTA sharing each
// weight load, K split across CTAs where N alone does not fill the GPU.
//
// A CTA: 4 warps, warp w owns W tile row nb = 4 blockIdx.x + w (16 outputs);
// per stage of 8 k-tiles (512 inputs; 4 with 64 activation rows, for shared
// memory) each lane issues its 16-byte weight loads (one per k-tile, 512
// contiguous bytes per warp per k-tile), all in flight together, before the
// CTA stages the activations [16 m_tiles][stage] in shared memory (rows padded
// by 16 bytes: the A-fragment loads of a warp hit 32 distinct banks). The
// group's scale and zero are read when the group changes (groups are a
// multiple of 64 inputs: a k-tile never straddles two).

constexpr int v3_warps = 4;
// k-tiles per shared-memory stage: 8 (16 or 32 activation rows, 16.5 or 33 KB), 4 for 64 rows (33 KB).
template <int MT>
constexpr int v3_stage_tiles = MT == 4 ? 4 : 8;

template <int MT>
__global__ void __launch_bounds__(v3_warps * 32)
    w4a16_mma_kernel_v3(const __nv_bfloat16* __restrict__ x, const uint4* __restrict__ tiles,
                        const __nv_bfloat16* __restrict__ scales, const std::uint8_t* __restrict__ zeros,
                        __nv_bfloat16* __restrict__ d, float* __restrict__ partial, int m, int n, int k, int group,
                        int k_tiles_per_split) {
  constexpr int stage_tiles = v3_stage_tiles<MT>;
  constexpr int x_stride = stage_tiles * w4_tile_k + 8;  // bf16 per staged activation row
  __shared__ __align__(16) __nv_bfloat16 sx[MT * 16][x_stride];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int nb = blockIdx.x * v3_warps + warp;
  const int n_tiles = n / w4_tile_n, k_tiles = k / w4_tile_k, groups = (k + group - 1) / group;
  const bool active = nb < n_tiles;
  const int m0 = blockIdx.y * MT * 16;
  const int kb_begin = blockIdx.z * k_tiles_per_split, kb_end = min(k_tiles, kb_begin + k_tiles_per_split);
  const uint4* wt = tiles + static_cast<std::int64_t>(nb) * k_tiles * 32 + lane;  // tile kb: wt[32 kb]

  float acc[MT][2][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < 2; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[mt][nt][i] = 0;
  int cached_group = -1;
  __nv_bfloat162 s2[2], z2[2];  // per n8 half: scale and 128 + zero, in both halves

  for (int kc = kb_begin; kc < kb_end; kc += stage_tiles) {
    const int stage = min(stage_tiles, kb_end - kc);
    uint4 wq[stage_tiles];
#pragma unroll
    for (int u = 0; u < stage_tiles; ++u)
      wq[u] = active && u < stage ? __ldg(wt + static_cast<std::int64_t>(kc + u) * 32) : make_uint4(0, 0, 0, 0);
    __syncthreads();  // every warp is done with the previous stage's activations
    const int vecs = stage * (w4_tile_k / 8);  // 16-byte vectors per activation row
    for (int i = threadIdx.x; i < MT * 16 * vecs; i += v3_warps * 32) {
      const int r = i / vecs, c = i % vecs;
      uint4 v = make_uint4(0, 0, 0, 0);
      if (m0 + r < m) v = *reinterpret_cast<const uint4*>(x + static_cast<std::int64_t>(m0 + r) * k + static_cast<std::int64_t>(kc) * w4_tile_k + c * 8);
      *reinterpret_cast<uint4*>(&sx[r][c * 8]) = v;
    }
    __syncthreads();
    if (!active) continue;
#pragma unroll
    for (int u = 0; u < stage_tiles; ++u) {
      if (u >= stage) break;
      const int gi = (kc + u) * w4_tile_k / group;
      if (gi != cached_group) {
        cached_group = gi;
#pragma unroll
        for (int nt = 0; nt < 2; ++nt) {
          const std::int64_t row = static_cast<std::int64_t>(nb) * w4_tile_n + nt * 8 + (lane >> 2);
          s2[nt] = __bfloat162bfloat162(scales[row * groups + gi]);
          z2[nt] = __float2bfloat162_rn(128.0f + static_cast<float>(zeros[row * groups + gi]));
        }
      }
      const std::uint32_t words[4] = {wq[u].x, wq[u].y, wq[u].z, wq[u].w};
#pragma unroll
      for (int w = 0; w < 4; ++w) {  // k16 steps
        std::uint32_t b[2][2];
#pragma unroll
        for (int p = 0; p < 4; ++p) {
          const __nv_bfloat162 c128 = bits_as_bf162(((words[w] >> (4 * p)) & 0x000F000Fu) | 0x43004300u);
          b[p >> 1][p & 1] = bf162_as_bits(__hmul2(__hsub2(c128, z2[p >> 1]), s2[p >> 1]));
        }
        const int col = u * w4_tile_k + w * 16;
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          std::uint32_t a[4];
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            const mma::rc e = mma::a_element(lane, 2 * j);
            a[j] = *reinterpret_cast<const std::uint32_t*>(&sx[mt * 16 + e.row][col + e.col]);
          }
          mma_bf16_16816(acc[mt][0], a, b[0][0], b[0][1]);
          mma_bf16_16816(acc[mt][1], a, b[1][0], b[1][1]);
        }
      }
    }
  }
  if (!active) return;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < 2; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const mma::rc e = mma::c_element(lane, i);
        const int row = m0 + mt * 16 + e.row;
        if (row >= m) continue;
        const std::int64_t at = static_cast<std::int64_t>(row) * n + static_cast<std::int64_t>(nb) * w4_tile_n + nt * 8 + e.col;
        if (partial) partial[static_cast<std::int64_t>(blockIdx.z) * m * n + at] = acc[mt][nt][i];
        else d[at] = __float2bfloat16_rn(acc[mt][nt][i]);
      }
}

// Sums the K slices' FP32 partials into bf16 D.
__global__ void w4a16_reduce_splits(const float* __restrict__ partial, __nv_bfloat16* __restrict__ d, std::int64_t mn, int splits) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < mn;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    float s = 0;
    for (int z = 0; z < splits; ++z) s += partial[z * mn + i];
    d[i] = __float2bfloat16_rn(s);
  }
}

template <int MT>
void launch_v3(const void* x, const std::uint32_t* tiles, const void* scales, const std::uint8_t* zeros, void* d,
               float* partial, int m, int n, int k, int group, const w4a16_grid& g, cudaStream_t stream) {
  const dim3 grid(g.ctas_n, g.ctas_m, g.splits);
  w4a16_mma_kernel_v3<MT><<<grid, v3_warps * 32, 0, stream>>>(
      static_cast<const __nv_bfloat16*>(x), reinterpret_cast<const uint4*>(tiles), static_cast<const __nv_bfloat16*>(scales),
      zeros, static_cast<__nv_bfloat16*>(d), partial, m, n, k, group, g.k_tiles_per_split);
  GPUCAL_CUDA_CHECK(cudaGetLastError());
}

// The packed (int4_weights) layout's sizes; false when there is nothing to do.
bool check_packed(int m, int n, int k, int group, const char* who) {
  if (m < 0 || n < 0 || k <= 0 || k % 8 || group <= 0 || group % 8)
    throw std::invalid_argument(std::string(who) + ": k and group must be positive multiples of 8 (k=" + std::to_string(k) +
                                ", group=" + std::to_string(group) + ")");
  return m > 0 && n > 0;
}

// Version 1 for checked sizes.
void launch_v1(const void* x, const std::uint32_t* packed, const void* scales, const std::uint8_t* zeros, void* d, int m, int n, int k,
               int group, cudaStream_t stream) {
  const dim3 grid((n + rows_per_block - 1) / rows_per_block, (m + m_tile - 1) / m_tile);
  w4a16_gemv_kernel<<<grid, rows_per_block * 32, 0, stream>>>(
      static_cast<const __nv_bfloat16*>(x), packed, static_cast<const __nv_bfloat16*>(scales), zeros,
      static_cast<__nv_bfloat16*>(d), m, n, k, group);
  GPUCAL_CUDA_CHECK(cudaGetLastError());
}

void check_v3(int m, int n, int k, int group, const char* who) {
  if (m < 0 || n < 0 || k <= 0 || k % w4_tile_k || n % w4_tile_n || group <= 0 || group % w4_tile_k)
    throw std::invalid_argument(std::string(who) + ": n must be a multiple of 16, k and group multiples of 64 (n=" +
                                std::to_string(n) + ", k=" + std::to_string(k) + ", group=" + std::to_string(group) + ")");
}

}  // namespace

std::size_t w4a16_gemm_v3_workspace_bytes(int m, int n, int k, int group) {
  check_v3(m, n, k, group, "w4a16_gemm_v3_workspace_bytes");
  if (m == 0 || n == 0) return 0;
  return static_cast<std::size_t>(choose_w4a16_grid(m, n, k, current_device_sm_count()).workspace_bytes(m, n));
}

void w4a16_gemm_v3(const void* x, const std::uint32_t* tiles, const void* scales, const std::uint8_t* zeros, void* d, int m,
                   int n, int k, int group, void* workspace, std::size_t workspace_bytes, cudaStream_t stream) {
  check_v3(m, n, k, group, "w4a16_gemm_v3");
  if (m == 0 || n == 0) return;
  const w4a16_grid g = choose_w4a16_grid(m, n, k, current_device_sm_count());
  const auto need = static_cast<std::size_t>(g.workspace_bytes(m, n));
  if (workspace_bytes < need || (need && !workspace))
    throw std::invalid_argument("w4a16_gemm_v3: workspace of " + std::to_string(workspace_bytes) + " bytes, " +
                                std::to_string(need) + " needed (w4a16_gemm_v3_workspace_bytes)");
  float* partial = need ? static_cast<float*>(workspace) : nullptr;
  if (g.m_tiles == 1) launch_v3<1>(x, tiles, scales, zeros, d, partial, m, n, k, group, g, stream);
  else if (g.m_tiles == 2) launch_v3<2>(x, tiles, scales, zeros, d, partial, m, n, k, group, g, stream);
  else launch_v3<4>(x, tiles, scales, zeros, d, partial, m, n, k, group, g, stream);
  if (partial) {
    const std::int64_t mn = static_cast<std::int64_t>(m) * n;
    const int blocks = static_cast<int>(std::min<std::int64_t>((mn + 255) / 256, 4096));
    w4a16_reduce_splits<<<blocks, 256, 0, stream>>>(partial, static_cast<__nv_bfloat16*>(d), mn, g.splits);
    GPUCAL_CUDA_CHECK(cudaGetLastError());
  }
}

void w4a16_gemm_v2(const void* x, const std::uint32_t* packed, const void* scales, const std::uint8_t* zeros, void* d,
                   int m, int n, int k, int group, cudaStream_t stream) {
  if (!check_packed(m, n, k, group, "w4a16_gemm_v2")) return;
  if (k % 32 || group % 32) {  // off v2's 32-code grid: version 1
    launch_v1(x, packed, scales, zeros, d, m, n, k, group, stream);
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
  if (check_packed(m, n, k, group, "w4a16_gemm")) launch_v1(x, packed, scales, zeros, d, m, n, k, group, stream);
}

}  // namespace gpucal::kernels
