// Paged decode attention (see paged_attention.hpp).
//
// Pass 1: grid (partitions, kv_heads, batch), 4 warps. Each warp walks every
// 4th token of its partition; a token's K row for one KV head is head_dim
// contiguous values, read by the 32 lanes as one coalesced 128/256-byte
// access (head_dim / 32 values per lane), dotted with the group's query
// heads held in registers, reduced across the warp, and folded into a
// running (max, sum, accumulator) per query head: online softmax in FP32.
// The four warps' states are merged in shared memory and written, unscaled,
// to the workspace. Pass 2: one block per (query head, sequence) merges the
// partitions and normalizes.
//
// Napkin math: batch 64 x context 4096 x 8 KV heads x 128 dims x 2 (K, V)
// x 2 bytes x 32 layers is 17 GB per step for Llama-3-8B; one layer's call
// reads 537 MB, 0.19 ms at 2.9 TB/s.
#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "bf16x8.cuh"
#include "warp_reduce.cuh"
#include "gpucal/kernels/attention_split.hpp"
#include "gpucal/kernels/cuda_check.hpp"
#include "gpucal/kernels/device_query.hpp"
#include "gpucal/kernels/paged_attention.hpp"

namespace gpucal::kernels {

namespace {

constexpr int warps = 4;
constexpr int max_group = 8;

template <int Vec>
__device__ __forceinline__ void load_row(const __nv_bfloat16* p, float (&out)[Vec], float) {
  if constexpr (Vec == 4) {
    const uint2 raw = *reinterpret_cast<const uint2*>(p);  // 4 bf16
    const __nv_bfloat162 a = *reinterpret_cast<const __nv_bfloat162*>(&raw.x);
    const __nv_bfloat162 b = *reinterpret_cast<const __nv_bfloat162*>(&raw.y);
    out[0] = __low2float(a);
    out[1] = __high2float(a);
    out[2] = __low2float(b);
    out[3] = __high2float(b);
  } else {
    const __nv_bfloat162 a = *reinterpret_cast<const __nv_bfloat162*>(p);
    out[0] = __low2float(a);
    out[1] = __high2float(a);
  }
}

template <int Vec>
__device__ __forceinline__ void load_row(const __nv_fp8_storage_t* p, float (&out)[Vec], float scale) {
#pragma unroll
  for (int i = 0; i < Vec; ++i) {
    const __half_raw h = __nv_cvt_fp8_to_halfraw(p[i], __NV_E4M3);
    out[i] = __half2float(__half(h)) * scale;
  }
}

// Folds one token (score s, value row v) into an online-softmax state (m, l, acc).
template <int N>
__device__ __forceinline__ void online_softmax_add(float s, const float (&v)[N], float& m, float& l, float (&acc)[N]) {
  const float m_new = fmaxf(m, s);
  const float corr = __expf(m - m_new);  // exp(-inf) = 0 on the first token
  const float p = __expf(s - m_new);
  l = l * corr + p;
#pragma unroll
  for (int i = 0; i < N; ++i) acc[i] = acc[i] * corr + p * v[i];
  m = m_new;
}

// Combines n online-softmax states, state i holding its maximum m[i * stride],
// its sum l[i * stride] and one accumulator value acc[i * acc_stride]: the
// largest maximum, and the sum and accumulator rescaled to it (0 and 0 when
// every state is empty).
__device__ __forceinline__ void combine_softmax_states(const float* m, const float* l, const float* acc, int n, int stride,
                                                       std::int64_t acc_stride, float& mx, float& lsum, float& a) {
  mx = -INFINITY;
  for (int i = 0; i < n; ++i) mx = fmaxf(mx, m[i * stride]);
  lsum = 0;
  a = 0;
  if (mx == -INFINITY) return;
  for (int i = 0; i < n; ++i) {
    const float f = __expf(m[i * stride] - mx);
    lsum += l[i * stride] * f;
    a += acc[i * acc_stride] * f;
  }
}

// Merges a CTA's softmax states of one partition and writes them, unscaled, to
// the workspace: state w of query head g (of the KV head's group) at
// s_m[w * stride + g], s_l[w * stride + g], s_acc[(w * stride + g) * HeadDim + d].
template <int HeadDim>
__device__ void merge_states_to_workspace(const float* s_m, const float* s_l, const float* s_acc, int states, int stride,
                                          int group, std::int64_t first_head, int part, int partitions,
                                          float* __restrict__ ws_m, float* __restrict__ ws_l, float* __restrict__ ws_acc) {
  for (int idx = threadIdx.x; idx < group * HeadDim; idx += blockDim.x) {
    const int g = idx / HeadDim, d = idx % HeadDim;
    float mx, lsum, a;
    combine_softmax_states(s_m + g, s_l + g, s_acc + g * HeadDim + d, states, stride, static_cast<std::int64_t>(stride) * HeadDim,
                           mx, lsum, a);
    const std::int64_t h = first_head + g;  // [seq][q_head]
    ws_acc[(h * partitions + part) * HeadDim + d] = a;
    if (d == 0) {
      ws_m[h * partitions + part] = mx;
      ws_l[h * partitions + part] = lsum;
    }
  }
}

// Workspace: m and l as [batch][q_heads][partitions]; acc as [batch][q_heads][partitions][head_dim].
template <int HeadDim, typename KV>
__global__ void __launch_bounds__(warps * 32) paged_attention_partition_kernel(
    const __nv_bfloat16* __restrict__ q, const KV* __restrict__ k_cache, const KV* __restrict__ v_cache,
    float k_scale, float v_scale, const std::int32_t* __restrict__ block_tables, int max_blocks,
    const std::int32_t* __restrict__ context_lens, float* __restrict__ ws_m, float* __restrict__ ws_l,
    float* __restrict__ ws_acc, int q_heads, int kv_heads, int block_size, float scale, int partition_tokens,
    int partitions) {
  constexpr int Vec = HeadDim / 32;
  const int part = blockIdx.x, kvh = blockIdx.y, seq = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int group = q_heads / kv_heads;
  const int len = context_lens[seq];
  const int begin = part * partition_tokens, end = min(len, begin + partition_tokens);

  float qv[max_group][Vec];
  float m[max_group], l[max_group], acc[max_group][Vec];
#pragma unroll
  for (int g = 0; g < max_group; ++g) {
    m[g] = -INFINITY;
    l[g] = 0;
#pragma unroll
    for (int i = 0; i < Vec; ++i) acc[g][i] = 0;
    if (g < group) load_row<Vec>(q + (static_cast<std::int64_t>(seq) * q_heads + kvh * group + g) * HeadDim + lane * Vec, qv[g], 1.0f);
  }

  const std::int64_t row = static_cast<std::int64_t>(kv_heads) * HeadDim;  // elements per token slot
  for (int t = begin + warp; t < end; t += warps) {
    const std::int64_t block = block_tables[static_cast<std::int64_t>(seq) * max_blocks + t / block_size];
    const std::int64_t base = (block * block_size + t % block_size) * row + kvh * HeadDim + lane * Vec;  // [block][slot][kvh][dim]
    float kv[Vec], vv[Vec];
    load_row<Vec>(k_cache + base, kv, k_scale);
    load_row<Vec>(v_cache + base, vv, v_scale);
#pragma unroll
    for (int g = 0; g < max_group; ++g) {
      if (g >= group) break;
      float dot = 0;
#pragma unroll
      for (int i = 0; i < Vec; ++i) dot += qv[g][i] * kv[i];
      online_softmax_add(warp_sum(dot) * scale, vv, m[g], l[g], acc[g]);
    }
  }

  // Merge the warps: [warp][group] maxima and sums, [warp][group][dim] accumulators.
  __shared__ float sm[warps][max_group], sl[warps][max_group];
  __shared__ float sacc[warps][max_group][HeadDim];
#pragma unroll
  for (int g = 0; g < max_group; ++g) {
    if (g >= group) break;
    if (lane == 0) {
      sm[warp][g] = m[g];
      sl[warp][g] = l[g];
    }
#pragma unroll
    for (int i = 0; i < Vec; ++i) sacc[warp][g][lane * Vec + i] = acc[g][i];
  }
  __syncthreads();
  merge_states_to_workspace<HeadDim>(&sm[0][0], &sl[0][0], &sacc[0][0][0], warps, max_group, group,
                                     static_cast<std::int64_t>(seq) * q_heads + kvh * group, part, partitions, ws_m, ws_l, ws_acc);
}

template <int HeadDim>
__global__ void paged_attention_reduce_kernel(const float* __restrict__ ws_m, const float* __restrict__ ws_l,
                                              const float* __restrict__ ws_acc,
                                              const std::int32_t* __restrict__ context_lens,
                                              __nv_bfloat16* __restrict__ out, int q_heads, int partition_tokens,
                                              int partitions) {
  const int head = blockIdx.x, seq = blockIdx.y, d = threadIdx.x;
  const std::int64_t h = static_cast<std::int64_t>(seq) * q_heads + head;
  const int used = (context_lens[seq] + partition_tokens - 1) / partition_tokens;
  float mx, lsum, a;
  combine_softmax_states(ws_m + h * partitions, ws_l + h * partitions, ws_acc + h * partitions * HeadDim + d, used, 1, HeadDim,
                         mx, lsum, a);
  out[h * HeadDim + d] = __float2bfloat16_rn(lsum > 0 ? a / lsum : 0.0f);  // an empty context gives zeros
}

int partitions_of(const paged_attention_args& a) {
  return std::max(1, (a.max_context_len + a.partition_tokens - 1) / a.partition_tokens);
}

// The workspace of `parts` partitions: m and l as [batch][q_heads][parts], acc as [batch][q_heads][parts][head_dim].
std::size_t workspace_floats(const paged_attention_args& a, int parts) {
  const auto heads = static_cast<std::size_t>(a.batch) * static_cast<std::size_t>(a.q_heads);
  return heads * static_cast<std::size_t>(parts) * (2 + static_cast<std::size_t>(a.head_dim));
}

// Both passes of either version (their partition kernels take the same
// parameters): partitions into the workspace, then the per-head reduction.
template <int HeadDim, typename KV, typename PartitionKernel>
void launch_passes(PartitionKernel kernel, const paged_attention_args& a, int partition_tokens, int parts, int threads,
                   std::size_t smem, cudaStream_t stream) {
  const std::int64_t heads = static_cast<std::int64_t>(a.batch) * a.q_heads;
  auto* ws = static_cast<float*>(a.workspace);
  float *ws_m = ws, *ws_l = ws + heads * parts, *ws_acc = ws + 2 * heads * parts;
  kernel<<<dim3(parts, a.kv_heads, a.batch), threads, smem, stream>>>(
      static_cast<const __nv_bfloat16*>(a.q), static_cast<const KV*>(a.k_cache), static_cast<const KV*>(a.v_cache), a.k_scale,
      a.v_scale, a.block_tables, a.max_blocks_per_seq, a.context_lens, ws_m, ws_l, ws_acc, a.q_heads, a.kv_heads, a.block_size,
      a.scale, partition_tokens, parts);
  GPUCAL_CUDA_CHECK(cudaGetLastError());
  paged_attention_reduce_kernel<HeadDim><<<dim3(a.q_heads, a.batch), HeadDim, 0, stream>>>(
      ws_m, ws_l, ws_acc, a.context_lens, static_cast<__nv_bfloat16*>(a.out), a.q_heads, partition_tokens, parts);
  GPUCAL_CUDA_CHECK(cudaGetLastError());
}

template <int HeadDim, typename KV>
void launch(const paged_attention_args& a, cudaStream_t stream) {
  launch_passes<HeadDim, KV>(paged_attention_partition_kernel<HeadDim, KV>, a, a.partition_tokens, partitions_of(a), warps * 32, 0,
                             stream);
}

// ---- paged_attention_partition_kernel_v2 ----
// Why v2: v1 reads one 8-byte K and V load per lane per token behind a
// dependent block-table load and keeps max_group arrays whatever the group;
// v2 gives each token row HeadDim / 8 lanes that load 8 elements at once
// (16 bytes of bf16, 8 of fp8), issues the loads of 4 tokens per sub-warp
// before using any, stages the partition's block-table slice in shared
// memory, sizes its registers by the GQA group's power-of-two bucket, and
// splits the context so that small batches still fill the GPU.
// ptxas (CUDA 13.0, sm_90a; cmake -DGPUCAL_PTXAS_VERBOSE=ON prints it):
// group bucket 1/2/4/8 uses 72/104/144/216 registers with bf16 KV and
// 56/92/131/206 with fp8 at head_dim 64 and 128, no spill on sm_80/89/90a
// at 2 CTAs per SM; dynamic shared memory
// (4 states at head_dim 256, 8 at 128, 16 at 64) x bucket x (2 + head_dim) floats +
// the table slice (under 48 KB).

constexpr int v2_warps = 4;
constexpr int v2_vec = 8;     // elements per lane per row
constexpr int v2_unroll = 4;  // token steps whose loads are issued together

template <typename KV>
struct v2_raw;
template <>
struct v2_raw<__nv_bfloat16> {
  using type = uint4;  // 8 bf16
};
template <>
struct v2_raw<__nv_fp8_storage_t> {
  using type = uint2;  // 8 fp8
};

__device__ __forceinline__ void v2_unpack(const uint4& r, float (&out)[v2_vec], float) { unpack_bf16x8(r, out); }

__device__ __forceinline__ void v2_unpack(const uint2& r, float (&out)[v2_vec], float scale) { unpack_fp8x8(r, out, scale); }

// Independent softmax states of a CTA: its warps' sub-warps, one token row each per step.
template <int HeadDim>
constexpr int v2_states = v2_warps * (32 / (HeadDim / v2_vec));

// Shared memory of one CTA: the softmax states of its sub-warps, then the block-table slice.
template <int HeadDim, int GroupMax>
__host__ __device__ constexpr std::size_t v2_state_floats() {
  return static_cast<std::size_t>(v2_states<HeadDim>) * GroupMax * (2 + HeadDim);
}

template <int HeadDim, int GroupMax, typename KV>
__global__ void __launch_bounds__(v2_warps * 32, 2) paged_attention_partition_kernel_v2(
    const __nv_bfloat16* __restrict__ q, const KV* __restrict__ k_cache, const KV* __restrict__ v_cache,
    float k_scale, float v_scale, const std::int32_t* __restrict__ block_tables, int max_blocks,
    const std::int32_t* __restrict__ context_lens, float* __restrict__ ws_m, float* __restrict__ ws_l,
    float* __restrict__ ws_acc, int q_heads, int kv_heads, int block_size, float scale, int partition_tokens,
    int partitions) {
  using raw_t = typename v2_raw<KV>::type;
  constexpr int lanes = HeadDim / v2_vec;          // lanes per token row: 32 (head_dim 256), 16 (128) or 8 (64)
  constexpr int tok = 32 / lanes;                  // tokens a warp reads per step
  constexpr int states = v2_states<HeadDim>;       // independent softmax states per CTA
  constexpr int step = states;                     // tokens the CTA reads per step: one per state
  const int part = blockIdx.x, kvh = blockIdx.y, seq = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, sub = lane / lanes, sl = lane % lanes;
  const int state = warp * tok + sub;
  const int group = q_heads / kv_heads;
  const int len = context_lens[seq];
  const int begin = part * partition_tokens, end = min(len, begin + partition_tokens);

  extern __shared__ float smem[];
  float* s_m = smem;
  float* s_l = s_m + states * GroupMax;
  float* s_acc = s_l + states * GroupMax;
  auto* table = reinterpret_cast<std::int32_t*>(smem + v2_state_floats<HeadDim, GroupMax>());
  const int first_block = begin / block_size;
  const int blocks = end > begin ? (end - 1) / block_size - first_block + 1 : 0;
  for (int i = threadIdx.x; i < blocks; i += blockDim.x)
    table[i] = block_tables[static_cast<std::int64_t>(seq) * max_blocks + first_block + i];
  __syncthreads();

  float qv[GroupMax][v2_vec], m[GroupMax], l[GroupMax], acc[GroupMax][v2_vec];
#pragma unroll
  for (int g = 0; g < GroupMax; ++g) {
    m[g] = -INFINITY;
    l[g] = 0;
#pragma unroll
    for (int i = 0; i < v2_vec; ++i) acc[g][i] = qv[g][i] = 0;
    if (g < group) {
      const uint4 raw = *reinterpret_cast<const uint4*>(q + (static_cast<std::int64_t>(seq) * q_heads + kvh * group + g) * HeadDim + sl * v2_vec);
      v2_unpack(raw, qv[g], 1.0f);
    }
  }

  const std::int64_t row = static_cast<std::int64_t>(kv_heads) * HeadDim;  // elements per token slot
  // The loop bound is the same for the whole warp, so every lane reaches every shuffle.
  for (int base = begin + warp * tok; base < end; base += v2_unroll * step) {
    raw_t kr[v2_unroll], vr[v2_unroll];
#pragma unroll
    for (int u = 0; u < v2_unroll; ++u) {
      const int t = base + u * step + sub;
      kr[u] = vr[u] = raw_t{};
      if (t < end) {
        const std::int64_t block = table[t / block_size - first_block];
        const std::int64_t off = (block * block_size + t % block_size) * row + kvh * HeadDim + sl * v2_vec;  // [block][slot][kvh][dim]
        kr[u] = *reinterpret_cast<const raw_t*>(k_cache + off);
        vr[u] = *reinterpret_cast<const raw_t*>(v_cache + off);
      }
    }
#pragma unroll
    for (int u = 0; u < v2_unroll; ++u) {
      const bool valid = base + u * step + sub < end;
      float kf[v2_vec], vf[v2_vec];
      v2_unpack(kr[u], kf, k_scale);
      v2_unpack(vr[u], vf, v_scale);
#pragma unroll
      for (int g = 0; g < GroupMax; ++g) {
        float dot = 0;
#pragma unroll
        for (int i = 0; i < v2_vec; ++i) dot += qv[g][i] * kf[i];
        dot = warp_sum<lanes>(dot);  // within the sub-warp
        if (!valid || g >= group) continue;
        online_softmax_add(dot * scale, vf, m[g], l[g], acc[g]);
      }
    }
  }

  // Merge the sub-warps' states: [state][group] maxima and sums, [state][group][dim] accumulators.
#pragma unroll
  for (int g = 0; g < GroupMax; ++g) {
    if (g >= group) break;
    if (sl == 0) {
      s_m[state * GroupMax + g] = m[g];
      s_l[state * GroupMax + g] = l[g];
    }
#pragma unroll
    for (int i = 0; i < v2_vec; ++i) s_acc[(state * GroupMax + g) * HeadDim + sl * v2_vec + i] = acc[g][i];
  }
  __syncthreads();
  merge_states_to_workspace<HeadDim>(s_m, s_l, s_acc, states, GroupMax, group, static_cast<std::int64_t>(seq) * q_heads + kvh * group,
                                     part, partitions, ws_m, ws_l, ws_acc);
}

attention_split split_of(const paged_attention_args& a) {
  return choose_attention_split(a.batch, a.kv_heads, a.max_context_len, a.block_size, current_device_sm_count());
}

template <int HeadDim, int GroupMax, typename KV>
void launch_v2(const paged_attention_args& a, const attention_split& split, cudaStream_t stream) {
  const std::size_t smem = v2_state_floats<HeadDim, GroupMax>() * sizeof(float) +
                           static_cast<std::size_t>(split.table_entries) * sizeof(std::int32_t);
  launch_passes<HeadDim, KV>(paged_attention_partition_kernel_v2<HeadDim, GroupMax, KV>, a, split.partition_tokens, split.partitions,
                             v2_warps * 32, smem, stream);
}

template <int HeadDim, typename KV>
void launch_v2_group(const paged_attention_args& a, const attention_split& split, cudaStream_t stream) {
  const int group = a.q_heads / a.kv_heads;
  if (group <= 1) launch_v2<HeadDim, 1, KV>(a, split, stream);
  else if (group <= 2) launch_v2<HeadDim, 2, KV>(a, split, stream);
  else if (group <= 4) launch_v2<HeadDim, 4, KV>(a, split, stream);
  else launch_v2<HeadDim, 8, KV>(a, split, stream);
}

// Version 1 reads partition_tokens and has no head_dim 256; version 2 has both the other way round.
void check_args(const paged_attention_args& a, const char* name, int version) {
  const auto bad = [name](const std::string& what) { throw std::invalid_argument(std::string(name) + ": " + what); };
  if (a.head_dim != 64 && a.head_dim != 128 && (version == 1 || a.head_dim != 256))
    bad(std::string("head_dim must be 64 or 128") + (version == 1 ? "" : " or 256") + ", got " + std::to_string(a.head_dim));
  if (a.kv_heads <= 0 || a.q_heads % a.kv_heads != 0) bad("q_heads must be a multiple of kv_heads");
  if (a.q_heads / a.kv_heads > max_group) bad("at most 8 query heads per KV head");
  if (a.block_size <= 0 || (version == 1 && (a.partition_tokens <= 0 || a.partition_tokens % warps)))
    bad("block_size and partition_tokens");
  if (!a.q || !a.k_cache || !a.v_cache || !a.block_tables || !a.context_lens || !a.out || !a.workspace) bad("null pointer");
}

}  // namespace

std::size_t paged_attention_v2_workspace_bytes(const paged_attention_args& a) {
  if (a.batch <= 0) return 0;
  if (a.kv_heads <= 0 || a.block_size <= 0 || a.q_heads <= 0 || a.max_context_len < 0)
    throw std::invalid_argument("paged_attention_v2_workspace_bytes: batch, heads, block_size and max_context_len");
  return workspace_floats(a, split_of(a).partitions) * sizeof(float);
}

void paged_attention_v2(const paged_attention_args& a, cudaStream_t stream) {
  check_args(a, "paged_attention_v2", 2);
  if (a.batch == 0) return;
  const attention_split split = split_of(a);
  const bool fp8 = a.cache_dtype == kv_dtype::fp8_e4m3;
  if (a.head_dim == 256) {  // Gemma 2 and 3 below 27B: one token per warp step, 32 lanes a row
    fp8 ? launch_v2_group<256, __nv_fp8_storage_t>(a, split, stream) : launch_v2_group<256, __nv_bfloat16>(a, split, stream);
  } else if (a.head_dim == 128) {
    fp8 ? launch_v2_group<128, __nv_fp8_storage_t>(a, split, stream) : launch_v2_group<128, __nv_bfloat16>(a, split, stream);
  } else {
    fp8 ? launch_v2_group<64, __nv_fp8_storage_t>(a, split, stream) : launch_v2_group<64, __nv_bfloat16>(a, split, stream);
  }
}

std::size_t paged_attention_workspace_bytes(const paged_attention_args& a) {
  return workspace_floats(a, partitions_of(a)) * sizeof(float);
}

double paged_attention_kv_bytes(std::int64_t total_context_tokens, int kv_heads, int head_dim, kv_dtype dtype) {
  return 2.0 * static_cast<double>(total_context_tokens) * kv_heads * head_dim * (dtype == kv_dtype::bf16 ? 2 : 1);
}

void paged_attention(const paged_attention_args& a, cudaStream_t stream) {
  check_args(a, "paged_attention", 1);
  if (a.batch == 0) return;
  const bool fp8 = a.cache_dtype == kv_dtype::fp8_e4m3;
  if (a.head_dim == 128) {
    fp8 ? launch<128, __nv_fp8_storage_t>(a, stream) : launch<128, __nv_bfloat16>(a, stream);
  } else {
    fp8 ? launch<64, __nv_fp8_storage_t>(a, stream) : launch<64, __nv_bfloat16>(a, stream);
  }
}

}  // namespace gpucal::kernels
