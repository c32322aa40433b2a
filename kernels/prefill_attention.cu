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

#include <atomic>
#include <cmath>
#include <stdexcept>
#include <string>

#include "gpucal/kernels/cuda_check.hpp"
#include "gpucal/kernels/mma_layout.hpp"
#include "gpucal/kernels/prefill_attention.hpp"
#include "gpucal/kernels/prefill_tiles.hpp"
#include "bf16x8.cuh"
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
  float f[8];
  unpack_fp8x8(*reinterpret_cast<const uint2*>(p), f, scale);
  return pack_bf16x8(f);
}

// ---- what both versions share: one warp's 16 query rows across the key tiles ----

// The running state of a warp's rows: O accumulators (n8 tiles of the
// output row), and per lane rows g and g + 8: maxima (log2 units) and sums
// (lane-partial until the end).
template <int HeadDim>
struct pf_rows_state {
  float o[HeadDim / 8][4];
  float row_max[2], row_sum[2];
  __device__ void init() {
#pragma unroll
    for (int n = 0; n < HeadDim / 8; ++n)
#pragma unroll
      for (int i = 0; i < 4; ++i) o[n][i] = 0;
    row_max[0] = row_max[1] = -INFINITY;
    row_sum[0] = row_sum[1] = 0;
  }
};

// Q fragments of rows w0.. of one head, zero past the chunk.
template <int HeadDim>
__device__ __forceinline__ void pf_load_q(std::uint32_t (&qa)[HeadDim / 16][4], const __nv_bfloat16* __restrict__ q, std::int64_t row0,
                                          int w0, int qlen, int q_heads, int head, int lane) {
#pragma unroll
  for (int s = 0; s < HeadDim / 16; ++s)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const mma::rc e = mma::a_element(lane, 2 * j);
      const int r = w0 + e.row;
      qa[s][j] = r < qlen ? *reinterpret_cast<const std::uint32_t*>(q + ((row0 + r) * q_heads + head) * HeadDim + s * 16 + e.col) : 0u;
    }
}

// Folds one tile of pf_keys keys from kt0 into the state: S = Q K^T from K
// rows in shared memory (`sk`, `sk_stride` bf16 apart), the causal mask
// against the rows' positions `pos`, the online softmax, and O += P V with
// V's B registers from `v_frag(n, j, b0, b1)` (n8 tile n of the output row,
// k16 step j of the tile's keys).
template <int HeadDim, typename VFrag>
__device__ __forceinline__ void pf_fold_tile(pf_rows_state<HeadDim>& st, const std::uint32_t (&qa)[HeadDim / 16][4],
                                             const __nv_bfloat16* sk, int sk_stride, VFrag&& v_frag, int kt0, const int (&pos)[2],
                                             float qk_scale, int lane) {
  const int g = lane >> 2, t = lane & 3;
  float s[pf_keys / 8][4];
#pragma unroll
  for (int n = 0; n < pf_keys / 8; ++n) {
#pragma unroll
    for (int i = 0; i < 4; ++i) s[n][i] = 0;
    const __nv_bfloat16* krow = sk + (n * 8 + g) * sk_stride + 2 * t;
#pragma unroll
    for (int ks = 0; ks < HeadDim / 16; ++ks) {
      const std::uint32_t b0 = *reinterpret_cast<const std::uint32_t*>(krow + ks * 16);
      const std::uint32_t b1 = *reinterpret_cast<const std::uint32_t*>(krow + ks * 16 + 8);
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
    const float m_new = fmaxf(st.row_max[h], tile_max[h]);
    base[h] = m_new == -INFINITY ? 0.0f : m_new;  // a row with no key yet: exp2(-inf) = 0 everywhere
    corr[h] = exp2f(st.row_max[h] - base[h]);
    st.row_max[h] = m_new;
    st.row_sum[h] *= corr[h];
  }
#pragma unroll
  for (int n = 0; n < HeadDim / 8; ++n)
#pragma unroll
    for (int i = 0; i < 4; ++i) st.o[n][i] *= corr[i >> 1];
#pragma unroll
  for (int n = 0; n < pf_keys / 8; ++n)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      s[n][i] = exp2f(s[n][i] - base[i >> 1]);
      st.row_sum[i >> 1] += s[n][i];
    }
  // O += P V: S tiles 2j and 2j + 1 are the A operand of k16 step j.
#pragma unroll
  for (int j = 0; j < pf_keys / 16; ++j) {
    const std::uint32_t pa[4] = {pack_bf162(s[2 * j][0], s[2 * j][1]), pack_bf162(s[2 * j][2], s[2 * j][3]),
                                 pack_bf162(s[2 * j + 1][0], s[2 * j + 1][1]), pack_bf162(s[2 * j + 1][2], s[2 * j + 1][3])};
#pragma unroll
    for (int n = 0; n < HeadDim / 8; ++n) {
      std::uint32_t b0, b1;
      v_frag(n, j, b0, b1);
      mma_bf16_16816(st.o[n], pa, b0, b1);
    }
  }
}

// Normalizes and writes the warp's rows below qlen.
template <int HeadDim>
__device__ __forceinline__ void pf_store_rows(pf_rows_state<HeadDim>& st, __nv_bfloat16* __restrict__ out, std::int64_t row0, int w0,
                                              int qlen, int q_heads, int head, int lane) {
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    st.row_sum[h] += __shfl_xor_sync(0xffffffffu, st.row_sum[h], 1);
    st.row_sum[h] += __shfl_xor_sync(0xffffffffu, st.row_sum[h], 2);
  }
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int r = w0 + g + 8 * h;
    if (r >= qlen) continue;
    // Key 0 is attended whenever the context holds the chunk; a context shorter
    // than its chunk leaves the row without keys: zeros, as decode's empty context.
    const float inv = st.row_sum[h] > 0 ? 1.0f / st.row_sum[h] : 0.0f;
    auto* dst = out + ((row0 + r) * q_heads + head) * HeadDim + 2 * t;
#pragma unroll
    for (int n = 0; n < HeadDim / 8; ++n)
      *reinterpret_cast<std::uint32_t*>(dst + n * 8) = pack_bf162(st.o[n][2 * h] * inv, st.o[n][2 * h + 1] * inv);
  }
}

// The CTA's place: its sequence's chunk, its 64 rows, its warp's 16.
struct pf_cta {
  int qlen, ctx, kvh, w0, warp_keys_end, kv_end;
  bool warp_active;
  std::int64_t row0;
  const std::int32_t* table;
  int pos[2];  // positions of the lane's rows g and g + 8
};

__device__ __forceinline__ pf_cta pf_place(const std::int32_t* block_tables, int max_blocks, const std::int32_t* table_rows,
                                           const std::int32_t* query_starts, const std::int32_t* query_lens,
                                           const std::int32_t* context_lens, int q_heads, int kv_heads) {
  pf_cta c;
  const int seq = blockIdx.z, head = blockIdx.y, q0 = blockIdx.x * pf_rows;
  const int warp = threadIdx.x / 32, g = (threadIdx.x % 32) >> 2;
  c.qlen = query_lens[seq];
  c.ctx = context_lens[seq];
  c.kvh = head / (q_heads / kv_heads);
  c.table = block_tables + static_cast<std::int64_t>(table_rows ? table_rows[seq] : seq) * max_blocks;
  c.row0 = query_starts[seq];
  c.w0 = q0 + warp * 16;
  c.warp_active = c.w0 < c.qlen;
  c.warp_keys_end = prefill_keys_end(c.qlen, c.ctx, c.w0, 16);  // tiles from here on are all in the warp's future
  c.kv_end = prefill_keys_end(c.qlen, c.ctx, q0, pf_rows);       // keys the CTA's last query attends to
  c.pos[0] = prefill_row_position(c.qlen, c.ctx, c.w0 + g);
  c.pos[1] = prefill_row_position(c.qlen, c.ctx, c.w0 + g + 8);
  return c;
}

// ---- version 1: plain loads, V transposed on its way into shared memory ----

// 3 CTAs per SM at head_dim 64, 2 at 128: ptxas then spills nothing on sm_80/89/90a.
template <int HeadDim, typename Cache>
__global__ void __launch_bounds__(pf_warps * 32, HeadDim == 64 ? 3 : 2)
    prefill_attention_kernel(const __nv_bfloat16* __restrict__ q, const Cache* __restrict__ k_cache, const Cache* __restrict__ v_cache,
                             float k_scale, float v_scale, const std::int32_t* __restrict__ block_tables, int max_blocks,
                             const std::int32_t* __restrict__ table_rows, const std::int32_t* __restrict__ query_starts,
                             const std::int32_t* __restrict__ query_lens, const std::int32_t* __restrict__ context_lens,
                             __nv_bfloat16* __restrict__ out, int q_heads, int kv_heads, int block_size, float scale) {
  constexpr int vec = HeadDim / 8;  // 16-byte vectors per K or V row
  __shared__ __align__(16) __nv_bfloat16 sk[pf_keys][HeadDim + 8];
  __shared__ __align__(16) __nv_bfloat16 svt[HeadDim][pf_keys + 8];
  if (static_cast<int>(blockIdx.x) * pf_rows >= query_lens[blockIdx.z]) return;  // the whole CTA: no barrier is skipped by part of it
  const pf_cta c = pf_place(block_tables, max_blocks, table_rows, query_starts, query_lens, context_lens, q_heads, kv_heads);
  const int lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3, head = blockIdx.y;
  std::uint32_t qa[HeadDim / 16][4];
  pf_load_q<HeadDim>(qa, q, c.row0, c.w0, c.qlen, q_heads, head, lane);
  pf_rows_state<HeadDim> st;
  st.init();
  const float qk_scale = scale * log2e;
  const auto v_frag = [&](int n, int j, std::uint32_t& b0, std::uint32_t& b1) {
    b0 = *reinterpret_cast<const std::uint32_t*>(&svt[n * 8 + g][j * 16 + 2 * t]);
    b1 = *reinterpret_cast<const std::uint32_t*>(&svt[n * 8 + g][j * 16 + 2 * t + 8]);
  };

  for (int kt0 = 0; kt0 < c.kv_end; kt0 += pf_keys) {
    __syncthreads();  // every warp is done with the previous tile
    for (int i = threadIdx.x; i < pf_keys * vec; i += pf_warps * 32) {
      // K: consecutive threads take consecutive 16-byte pieces of a row.
      {
        const int r = i / vec, col = i % vec, key = kt0 + r;
        uint4 v = make_uint4(0, 0, 0, 0);
        if (key < c.kv_end) {
          const std::int64_t slot = static_cast<std::int64_t>(c.table[key / block_size]) * block_size + key % block_size;
          v = load8(k_cache + (slot * kv_heads + c.kvh) * HeadDim + col * 8, k_scale);
        }
        *reinterpret_cast<uint4*>(&sk[r][col * 8]) = v;
      }
      // V, transposed: consecutive threads take consecutive keys of one 8-wide column strip.
      {
        const int r = i % pf_keys, col = i / pf_keys, key = kt0 + r;
        uint4 v = make_uint4(0, 0, 0, 0);
        if (key < c.kv_end) {
          const std::int64_t slot = static_cast<std::int64_t>(c.table[key / block_size]) * block_size + key % block_size;
          v = load8(v_cache + (slot * kv_heads + c.kvh) * HeadDim + col * 8, v_scale);
        }
        const auto* h = reinterpret_cast<const __nv_bfloat16*>(&v);
#pragma unroll
        for (int e = 0; e < 8; ++e) svt[col * 8 + e][r] = h[e];
      }
    }
    __syncthreads();
    if (!c.warp_active || kt0 >= c.warp_keys_end) continue;  // the tile is wholly in this warp's future
    pf_fold_tile<HeadDim>(st, qa, &sk[0][0], HeadDim + 8, v_frag, kt0, c.pos, qk_scale, lane);
  }
  if (c.warp_active) pf_store_rows<HeadDim>(st, out, c.row0, c.w0, c.qlen, q_heads, head, lane);
}

// ---- prefill_attention_kernel_v2 ----
// Why v2: version 1 loads a tile, waits for it, then computes, and pays 8
// two-byte shared stores per 16 bytes of V to transpose it; v2 copies K and V
// tiles with cp.async into two shared-memory buffers, the next tile landing
// while the warps compute on this one, and keeps V row-major (each B register
// of P V from two 2-byte shared loads). bf16 KV only: fp8 KV runs version 1.

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
  const auto dst = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem), "r"(valid ? 16 : 0));  // 0: zero-fill
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int Pending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending));
}

template <int HeadDim>
constexpr int pf_v2_stride = HeadDim + 8;  // bf16 per staged K or V row: fragment loads hit 32 distinct banks
template <int HeadDim>
constexpr std::size_t pf_v2_smem_bytes = 2 * 2 * pf_keys * pf_v2_stride<HeadDim> * sizeof(__nv_bfloat16);  // 2 buffers of K and V

// 3 CTAs per SM at head_dim 64 (37 KiB each), 2 at 128 (69 KiB each; one on sm_89's 100 KiB).
template <int HeadDim>
__global__ void __launch_bounds__(pf_warps * 32, HeadDim == 64 ? 3 : 2)
    prefill_attention_kernel_v2(const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k_cache,
                                const __nv_bfloat16* __restrict__ v_cache, const std::int32_t* __restrict__ block_tables, int max_blocks,
                                const std::int32_t* __restrict__ table_rows, const std::int32_t* __restrict__ query_starts,
                                const std::int32_t* __restrict__ query_lens, const std::int32_t* __restrict__ context_lens,
                                __nv_bfloat16* __restrict__ out, int q_heads, int kv_heads, int block_size, float scale) {
  constexpr int vec = HeadDim / 8, stride = pf_v2_stride<HeadDim>;
  extern __shared__ __align__(16) unsigned char pf_smem[];
  auto* smem = reinterpret_cast<__nv_bfloat16*>(pf_smem);  // buffer b: K at b x 2 x 64 rows, V right after
  if (static_cast<int>(blockIdx.x) * pf_rows >= query_lens[blockIdx.z]) return;  // the whole CTA
  const pf_cta c = pf_place(block_tables, max_blocks, table_rows, query_starts, query_lens, context_lens, q_heads, kv_heads);
  const int lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3, head = blockIdx.y;

  const auto issue = [&](int tile, int buf) {  // every thread's share of the tile's K and V rows, as one group
    __nv_bfloat16* sk = smem + buf * 2 * pf_keys * stride;
    __nv_bfloat16* sv = sk + pf_keys * stride;
    for (int i = threadIdx.x; i < pf_keys * vec; i += pf_warps * 32) {
      const int r = i / vec, col = i % vec, key = tile * pf_keys + r;
      const bool valid = key < c.kv_end;
      const std::int64_t slot = valid ? static_cast<std::int64_t>(c.table[key / block_size]) * block_size + key % block_size : 0;
      const std::int64_t off = (slot * kv_heads + c.kvh) * HeadDim + col * 8;
      cp_async16(sk + r * stride + col * 8, k_cache + off, valid);
      cp_async16(sv + r * stride + col * 8, v_cache + off, valid);
    }
    cp_async_commit();
  };
  const int tiles = (c.kv_end + pf_keys - 1) / pf_keys;
  if (tiles > 0) issue(0, 0);  // the first tile lands while Q is loaded

  std::uint32_t qa[HeadDim / 16][4];
  pf_load_q<HeadDim>(qa, q, c.row0, c.w0, c.qlen, q_heads, head, lane);
  pf_rows_state<HeadDim> st;
  st.init();
  const float qk_scale = scale * log2e;

  for (int tile = 0; tile < tiles; ++tile) {
    if (tile + 1 < tiles) {
      issue(tile + 1, (tile + 1) & 1);  // its buffer was last read in the previous iteration, before the barrier ending it
      cp_async_wait<1>();               // this tile's group has landed (the next may still be in flight)
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();  // every thread's copies of this tile are visible
    const __nv_bfloat16* sk = smem + (tile & 1) * 2 * pf_keys * stride;
    const __nv_bfloat16* sv = sk + pf_keys * stride;
    const int kt0 = tile * pf_keys;
    if (c.warp_active && kt0 < c.warp_keys_end) {
      // B register of P V: keys 16 j + 2 t (+ 1) (+ 8) of output column 8 n + g, from row-major V.
      const auto v_frag = [&](int n, int j, std::uint32_t& b0, std::uint32_t& b1) {
        const auto* v = reinterpret_cast<const std::uint16_t*>(sv) + (j * 16 + 2 * t) * stride + n * 8 + g;
        b0 = static_cast<std::uint32_t>(v[0]) | static_cast<std::uint32_t>(v[stride]) << 16;
        b1 = static_cast<std::uint32_t>(v[8 * stride]) | static_cast<std::uint32_t>(v[9 * stride]) << 16;
      };
      pf_fold_tile<HeadDim>(st, qa, sk, stride, v_frag, kt0, c.pos, qk_scale, lane);
    }
    __syncthreads();  // every warp is done with this buffer before the next iteration refills it
  }
  if (c.warp_active) pf_store_rows<HeadDim>(st, out, c.row0, c.w0, c.qlen, q_heads, head, lane);
}

// Both versions' grid: 64-row blocks of the longest chunk x query heads x sequences.
dim3 pf_grid(const prefill_attention_args& a) { return dim3((a.max_query_len + pf_rows - 1) / pf_rows, a.q_heads, a.sequences); }

template <int HeadDim, typename Cache>
void launch(const prefill_attention_args& a, cudaStream_t stream) {
  prefill_attention_kernel<HeadDim, Cache><<<pf_grid(a), pf_warps * 32, 0, stream>>>(
      static_cast<const __nv_bfloat16*>(a.q), static_cast<const Cache*>(a.k_cache), static_cast<const Cache*>(a.v_cache), a.k_scale,
      a.v_scale, a.block_tables, a.max_blocks_per_seq, a.table_rows, a.query_starts, a.query_lens, a.context_lens,
      static_cast<__nv_bfloat16*>(a.out), a.q_heads, a.kv_heads, a.block_size, a.scale);
  GPUCAL_CUDA_CHECK(cudaGetLastError());
}

template <int HeadDim>
void launch_v2(const prefill_attention_args& a, cudaStream_t stream) {
  constexpr std::size_t smem = pf_v2_smem_bytes<HeadDim>;  // 68 KiB at head_dim 128: above the 48 KiB default
  if constexpr (smem > 48 * 1024) {
    // Raised once per device (the attribute stays set), not on every launch.
    static std::atomic<std::uint64_t> raised{0};  // bit d: device d
    int device = 0;
    GPUCAL_CUDA_CHECK(cudaGetDevice(&device));
    const std::uint64_t bit = device < 64 ? std::uint64_t{1} << device : 0;
    if (!bit || !(raised.load(std::memory_order_relaxed) & bit)) {
      GPUCAL_CUDA_CHECK(cudaFuncSetAttribute(prefill_attention_kernel_v2<HeadDim>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             static_cast<int>(smem)));
      raised.fetch_or(bit, std::memory_order_relaxed);
    }
  }
  prefill_attention_kernel_v2<HeadDim><<<pf_grid(a), pf_warps * 32, smem, stream>>>(
      static_cast<const __nv_bfloat16*>(a.q), static_cast<const __nv_bfloat16*>(a.k_cache), static_cast<const __nv_bfloat16*>(a.v_cache),
      a.block_tables, a.max_blocks_per_seq, a.table_rows, a.query_starts, a.query_lens, a.context_lens, static_cast<__nv_bfloat16*>(a.out),
      a.q_heads, a.kv_heads, a.block_size, a.scale);
  GPUCAL_CUDA_CHECK(cudaGetLastError());
}

// Checks the arguments; false when there is nothing to do.
bool check_prefill_args(const prefill_attention_args& a, const char* name) {
  const auto bad = [name](const std::string& what) { throw std::invalid_argument(std::string(name) + ": " + what); };
  if (a.sequences < 0 || a.sequences > 65535) bad("sequences must be 0..65535 (grid z)");
  if (a.sequences == 0 || a.max_query_len == 0) return false;
  if (a.max_query_len < 0) bad("max_query_len must not be negative");
  if (a.head_dim != 64 && a.head_dim != 128) bad("head_dim must be 64 or 128 (got " + std::to_string(a.head_dim) + ")");
  if (a.q_heads <= 0 || a.kv_heads <= 0 || a.q_heads % a.kv_heads || a.q_heads > 65535)
    bad("q_heads must be a positive multiple of kv_heads, at most 65535");
  if (a.block_size <= 0 || a.max_blocks_per_seq <= 0) bad("block_size and max_blocks_per_seq must be positive");
  if (!(a.scale > 0)) bad("scale must be positive");
  if (!a.q || !a.k_cache || !a.v_cache || !a.block_tables || !a.query_starts || !a.query_lens || !a.context_lens || !a.out)
    bad("null pointer");
  return true;
}

// Version 1 for checked arguments.
void launch_v1(const prefill_attention_args& a, cudaStream_t stream) {
  const bool fp8 = a.cache_dtype == kv_dtype::fp8_e4m3;
  if (a.head_dim == 128) {
    fp8 ? launch<128, __nv_fp8_storage_t>(a, stream) : launch<128, __nv_bfloat16>(a, stream);
  } else {
    fp8 ? launch<64, __nv_fp8_storage_t>(a, stream) : launch<64, __nv_bfloat16>(a, stream);
  }
}

}  // namespace

void prefill_attention_v2(const prefill_attention_args& a, cudaStream_t stream) {
  if (!check_prefill_args(a, "prefill_attention_v2")) return;
  if (a.cache_dtype == kv_dtype::fp8_e4m3) {  // cp.async copies bytes: fp8 KV is converted on load by version 1
    launch_v1(a, stream);
    return;
  }
  a.head_dim == 128 ? launch_v2<128>(a, stream) : launch_v2<64>(a, stream);
}

void prefill_attention(const prefill_attention_args& a, cudaStream_t stream) {
  if (check_prefill_args(a, "prefill_attention")) launch_v1(a, stream);
}

double prefill_attention_flops(std::int64_t query_len, std::int64_t context_len, int q_heads, int head_dim) {
  // Query i attends to (context_len - query_len + i + 1) keys.
  const double q = static_cast<double>(query_len), prefix = static_cast<double>(context_len - query_len);
  const double pairs = q * prefix + q * (q + 1) / 2;
  return 4.0 * head_dim * pairs * q_heads;
}

}  // namespace gpucal::kernels
