// Causal prefill attention over the paged KV cache (see prefill_attention.hpp).
//
// Why a kernel of its own: the reference engine ran the decode kernel once
// per query token, O(T^2) CUDA-core work with no reuse of K and V across the
// queries of a chunk; this one is FlashAttention-2's loop on tensor cores.
//
// Grid (ceil(max_query_len / 64), q_heads, sequences), 4 warps. A CTA takes
// 64 query rows of one head, 16 per warp, their Q fragments held in
// registers for the whole walk. Per tile of 64 keys the CTA stages K
// ([key][head_dim]) and V transposed ([head_dim][key]) in shared memory,
// rows padded by 16 bytes so that the fragment loads of a warp hit 32
// distinct banks; fp8 KV is converted to bf16 (times its scale) on the way
// in. Each warp computes S = Q K^T (8 n8 tiles of FP32 accumulators), masks
// the keys past each query's position, updates its rows' running maxima
// (reduced over the 4 lanes sharing a row), and reuses the exponentiated S
// accumulators, rounded to bf16, directly as the A operand of P V (the
// fragment identity checked in tests/kernels/mma_layout_test.cpp). Tiles
// wholly in a warp's causal future are skipped; the walk ends at the CTA's
// last query position.
//
// Napkin math: a 4096-token chunk of Llama-3-8B (32 heads x 128) is
// 4 x 128 x 4096^2 / 2 x 32 = 275 GFLOP per layer, 0.35 ms at 790 TFLOP/s;
// FlashAttention-2 reaches 50-70 % of the dense peak on Hopper.
#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "gpucal/kernels/cuda_check.hpp"
#include "gpucal/kernels/mma_layout.hpp"
#include "gpucal/kernels/prefill_attention.hpp"
#include "gpucal/kernels/prefill_tiles.hpp"
#include "mma.cuh"

namespace gpucal::kernels {

namespace {

constexpr int pf_warps = 4;
constexpr int pf_rows = 16 * pf_warps;  // query rows per CTA
constexpr int pf_keys = 64;             // keys per tile
constexpr float log2e = 1.4426950408889634f;

// Eight cached values of one row as eight bf16 (16 bytes).
__device__ __forceinline__ uint4 load8(const __nv_bfloat16* p, float) { return *reinterpret_cast<const uint4*>(p); }

__device__ __forceinline__ uint4 load8(const __nv_fp8_storage_t* p, float scale) {
  const uint2 raw = *reinterpret_cast<const uint2*>(p);
  const auto* b = reinterpret_cast<const __nv_fp8x2_storage_t*>(&raw);
  uint4 out;
  auto* o = reinterpret_cast<std::uint32_t*>(&out);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2(b[i], __NV_E4M3)));
    o[i] = pack_bf162(f.x * scale, f.y * scale);
  }
  return out;
}

// 3 CTAs per SM at head_dim 64, 2 at 128: ptxas then spills nothing on sm_80/89/90a.
template <int HeadDim, typename Cache>
__global__ void __launch_bounds__(pf_warps * 32, HeadDim == 64 ? 3 : 2)
    prefill_attention_kernel(const __nv_bfloat16* __restrict__ q, const Cache* __restrict__ k_cache, const Cache* __restrict__ v_cache,
                             float k_scale, float v_scale, const std::int32_t* __restrict__ block_tables, int max_blocks,
                             const std::int32_t* __restrict__ table_rows, const std::int32_t* __restrict__ query_starts,
                             const std::int32_t* __restrict__ query_lens, const std::int32_t* __restrict__ context_lens,
                             __nv_bfloat16* __restrict__ out, int q_heads, int kv_heads, int block_size, float scale) {
  constexpr int ks_steps = HeadDim / 16;  // k16 steps of Q K^T
  constexpr int o_tiles = HeadDim / 8;    // n8 tiles of the output row
  constexpr int vec = HeadDim / 8;        // 16-byte vectors per K or V row
  __shared__ __align__(16) __nv_bfloat16 sk[pf_keys][HeadDim + 8];
  __shared__ __align__(16) __nv_bfloat16 svt[HeadDim][pf_keys + 8];

  const int seq = blockIdx.z, head = blockIdx.y, q0 = blockIdx.x * pf_rows;
  const int qlen = query_lens[seq];
  if (q0 >= qlen) return;  // the whole CTA: no barrier is skipped by part of it
  const int ctx = context_lens[seq];
  const int kvh = head / (q_heads / kv_heads);
  const std::int32_t* table = block_tables + static_cast<std::int64_t>(table_rows ? table_rows[seq] : seq) * max_blocks;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane >> 2, t = lane & 3;
  const int w0 = q0 + warp * 16;  // the warp's first query row
  const bool warp_active = w0 < qlen;
  const int warp_keys_end = prefill_keys_end(qlen, ctx, w0, 16);  // tiles from here on are all in the warp's future
  const int kv_end = prefill_keys_end(qlen, ctx, q0, pf_rows);    // keys the CTA's last query attends to

  // Q fragments, zero past the chunk.
  std::uint32_t qa[ks_steps][4];
  const std::int64_t row0 = query_starts[seq];
#pragma unroll
  for (int s = 0; s < ks_steps; ++s)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const mma::rc e = mma::a_element(lane, 2 * j);
      const int r = w0 + e.row;
      qa[s][j] = r < qlen ? *reinterpret_cast<const std::uint32_t*>(
                                q + ((row0 + r) * q_heads + head) * HeadDim + s * 16 + e.col)
                          : 0u;
    }

  float o[o_tiles][4];
#pragma unroll
  for (int n = 0; n < o_tiles; ++n)
#pragma unroll
    for (int i = 0; i < 4; ++i) o[n][i] = 0;
  float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0, 0};  // rows g and g + 8; sums lane-partial
  // Positions of the lane's two rows (past the chunk: the last query's, never stored).
  const int pos[2] = {prefill_row_position(qlen, ctx, w0 + g), prefill_row_position(qlen, ctx, w0 + g + 8)};
  const float qk_scale = scale * log2e;

  for (int kt0 = 0; kt0 < kv_end; kt0 += pf_keys) {
    __syncthreads();  // every warp is done with the previous tile
    for (int i = threadIdx.x; i < pf_keys * vec; i += pf_warps * 32) {
      // K: consecutive threads take consecutive 16-byte pieces of a row.
      {
        const int r = i / vec, c = i % vec, key = kt0 + r;
        uint4 v = make_uint4(0, 0, 0, 0);
        if (key < kv_end) {
          const std::int64_t slot = static_cast<std::int64_t>(table[key / block_size]) * block_size + key % block_size;
          v = load8(k_cache + (slot * kv_heads + kvh) * HeadDim + c * 8, k_scale);
        }
        *reinterpret_cast<uint4*>(&sk[r][c * 8]) = v;
      }
      // V, transposed: consecutive threads take consecutive keys of one 8-wide column strip.
      {
        const int r = i % pf_keys, c = i / pf_keys, key = kt0 + r;
        uint4 v = make_uint4(0, 0, 0, 0);
        if (key < kv_end) {
          const std::int64_t slot = static_cast<std::int64_t>(table[key / block_size]) * block_size + key % block_size;
          v = load8(v_cache + (slot * kv_heads + kvh) * HeadDim + c * 8, v_scale);
        }
        const auto* h = reinterpret_cast<const __nv_bfloat16*>(&v);
#pragma unroll
        for (int e = 0; e < 8; ++e) svt[c * 8 + e][r] = h[e];
      }
    }
    __syncthreads();
    if (!warp_active || kt0 >= warp_keys_end) continue;  // the tile is wholly in this warp's future

    float s[pf_keys / 8][4];
#pragma unroll
    for (int n = 0; n < pf_keys / 8; ++n) {
#pragma unroll
      for (int i = 0; i < 4; ++i) s[n][i] = 0;
#pragma unroll
      for (int ks = 0; ks < ks_steps; ++ks) {
        const std::uint32_t b0 = *reinterpret_cast<const std::uint32_t*>(&sk[n * 8 + g][ks * 16 + 2 * t]);
        const std::uint32_t b1 = *reinterpret_cast<const std::uint32_t*>(&sk[n * 8 + g][ks * 16 + 2 * t + 8]);
        mma_bf16_16816(s[n], qa[ks], b0, b1);
      }
    }
    // Mask, scale into log2 units, and fold into the running maxima.
    float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int n = 0; n < pf_keys / 8; ++n)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int key = kt0 + n * 8 + mma::c_element(lane, i).col;
        s[n][i] = key <= pos[i >> 1] ? s[n][i] * qk_scale : -INFINITY;
        tile_max[i >> 1] = fmaxf(tile_max[i >> 1], s[n][i]);
      }
    float corr[2], base[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      tile_max[h] = fmaxf(tile_max[h], __shfl_xor_sync(0xffffffffu, tile_max[h], 1));
      tile_max[h] = fmaxf(tile_max[h], __shfl_xor_sync(0xffffffffu, tile_max[h], 2));
      const float m_new = fmaxf(row_max[h], tile_max[h]);
      base[h] = m_new == -INFINITY ? 0.0f : m_new;  // a row with no key yet: exp2(-inf) = 0 everywhere
      corr[h] = exp2f(row_max[h] - base[h]);
      row_max[h] = m_new;
      row_sum[h] *= corr[h];
    }
#pragma unroll
    for (int n = 0; n < o_tiles; ++n)
#pragma unroll
      for (int i = 0; i < 4; ++i) o[n][i] *= corr[i >> 1];
#pragma unroll
    for (int n = 0; n < pf_keys / 8; ++n)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        s[n][i] = exp2f(s[n][i] - base[i >> 1]);
        row_sum[i >> 1] += s[n][i];
      }
    // O += P V: S tiles 2j and 2j + 1 are the A operand of k16 step j.
#pragma unroll
    for (int j = 0; j < pf_keys / 16; ++j) {
      const std::uint32_t pa[4] = {pack_bf162(s[2 * j][0], s[2 * j][1]), pack_bf162(s[2 * j][2], s[2 * j][3]),
                                   pack_bf162(s[2 * j + 1][0], s[2 * j + 1][1]), pack_bf162(s[2 * j + 1][2], s[2 * j + 1][3])};
#pragma unroll
      for (int n = 0; n < o_tiles; ++n) {
        const std::uint32_t b0 = *reinterpret_cast<const std::uint32_t*>(&svt[n * 8 + g][j * 16 + 2 * t]);
        const std::uint32_t b1 = *reinterpret_cast<const std::uint32_t*>(&svt[n * 8 + g][j * 16 + 2 * t + 8]);
        mma_bf16_16816(o[n], pa, b0, b1);
      }
    }
  }
  if (!warp_active) return;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    row_sum[h] += __shfl_xor_sync(0xffffffffu, row_sum[h], 1);
    row_sum[h] += __shfl_xor_sync(0xffffffffu, row_sum[h], 2);
  }
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int r = w0 + g + 8 * h;
    if (r >= qlen) continue;
    // Key 0 is attended whenever the context holds the chunk; a context shorter
    // than its chunk leaves the row without keys: zeros, as decode's empty context.
    const float inv = row_sum[h] > 0 ? 1.0f / row_sum[h] : 0.0f;
    auto* dst = out + ((row0 + r) * q_heads + head) * HeadDim + 2 * t;
#pragma unroll
    for (int n = 0; n < o_tiles; ++n)
      *reinterpret_cast<std::uint32_t*>(dst + n * 8) = pack_bf162(o[n][2 * h] * inv, o[n][2 * h + 1] * inv);
  }
}

template <int HeadDim, typename Cache>
void launch(const prefill_attention_args& a, cudaStream_t stream) {
  const dim3 grid((a.max_query_len + pf_rows - 1) / pf_rows, a.q_heads, a.sequences);
  prefill_attention_kernel<HeadDim, Cache><<<grid, pf_warps * 32, 0, stream>>>(
      static_cast<const __nv_bfloat16*>(a.q), static_cast<const Cache*>(a.k_cache), static_cast<const Cache*>(a.v_cache), a.k_scale,
      a.v_scale, a.block_tables, a.max_blocks_per_seq, a.table_rows, a.query_starts, a.query_lens, a.context_lens,
      static_cast<__nv_bfloat16*>(a.out), a.q_heads, a.kv_heads, a.block_size, a.scale);
  GPUCAL_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void prefill_attention(const prefill_attention_args& a, cudaStream_t stream) {
  const auto bad = [](const std::string& what) { throw std::invalid_argument("prefill_attention: " + what); };
  if (a.sequences < 0 || a.sequences > 65535) bad("sequences must be 0..65535 (grid z)");
  if (a.sequences == 0 || a.max_query_len == 0) return;
  if (a.max_query_len < 0) bad("max_query_len must not be negative");
  if (a.head_dim != 64 && a.head_dim != 128) bad("head_dim must be 64 or 128 (got " + std::to_string(a.head_dim) + ")");
  if (a.q_heads <= 0 || a.kv_heads <= 0 || a.q_heads % a.kv_heads || a.q_heads > 65535)
    bad("q_heads must be a positive multiple of kv_heads, at most 65535");
  if (a.block_size <= 0 || a.max_blocks_per_seq <= 0) bad("block_size and max_blocks_per_seq must be positive");
  if (!(a.scale > 0)) bad("scale must be positive");
  if (!a.q || !a.k_cache || !a.v_cache || !a.block_tables || !a.query_starts || !a.query_lens || !a.context_lens || !a.out)
    bad("null pointer");
  const bool fp8 = a.cache_dtype == kv_dtype::fp8_e4m3;
  if (a.head_dim == 128) {
    fp8 ? launch<128, __nv_fp8_storage_t>(a, stream) : launch<128, __nv_bfloat16>(a, stream);
  } else {
    fp8 ? launch<64, __nv_fp8_storage_t>(a, stream) : launch<64, __nv_bfloat16>(a, stream);
  }
}

double prefill_attention_flops(std::int64_t query_len, std::int64_t context_len, int q_heads, int head_dim) {
  // Query i attends to (context_len - query_len + i + 1) keys.
  const double q = static_cast<double>(query_len), prefix = static_cast<double>(context_len - query_len);
  const double pairs = q * prefix + q * (q + 1) / 2;
  return 4.0 * head_dim * pairs * q_heads;
}

}  // namespace gpucal::kernels
