// Decoder layer kernels (see layer_ops.hpp). Each is memory-bound: one pass
// over its inputs and outputs; rows are handled by one block so reductions
// (RMSNorm's sum of squares, argmax) stay in shared memory.
#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "bf16x8.cuh"
#include "warp_reduce.cuh"
#include "gpucal/kernels/cuda_check.hpp"
#include "gpucal/kernels/layer_ops.hpp"

namespace gpucal::kernels {

namespace {

using bf16 = __nv_bfloat16;

__global__ void embedding_kernel(const std::int32_t* __restrict__ ids, const bf16* __restrict__ table,
                                 bf16* __restrict__ out, int hidden) {
  const std::int64_t src = static_cast<std::int64_t>(ids[blockIdx.x]) * hidden;  // [vocab][hidden]
  const std::int64_t dst = static_cast<std::int64_t>(blockIdx.x) * hidden;
  for (int i = threadIdx.x; i < hidden; i += blockDim.x) out[dst + i] = table[src + i];
}

// Block sum through warp shuffles and one shared word per warp (blockDim a multiple of 32, <= 1024).
__device__ float block_sum(float v) {
  __shared__ float partial[32];
  v = warp_sum(v);
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = v;
  __syncthreads();
  float total = 0;
  for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) total += partial[w];
  __syncthreads();
  return total;
}

__global__ void rms_norm_kernel(const bf16* __restrict__ x, const bf16* __restrict__ w, bf16* __restrict__ out,
                                int hidden, float eps) {
  const std::int64_t base = static_cast<std::int64_t>(blockIdx.x) * hidden;
  float ss = 0;
  for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
    const float v = __bfloat162float(x[base + i]);
    ss += v * v;
  }
  const float inv = rsqrtf(block_sum(ss) / static_cast<float>(hidden) + eps);
  for (int i = threadIdx.x; i < hidden; i += blockDim.x)
    out[base + i] = __float2bfloat16_rn(__bfloat162float(x[base + i]) * inv * __bfloat162float(w[i]));
}

__global__ void residual_add_kernel(const bf16* __restrict__ a, const bf16* __restrict__ b, bf16* __restrict__ out,
                                    std::int64_t n) {
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    out[i] = __float2bfloat16_rn(__bfloat162float(a[i]) + __bfloat162float(b[i]));
}

__global__ void silu_mul_kernel(const bf16* __restrict__ gate_up, bf16* __restrict__ out, int inter) {
  const std::int64_t in = static_cast<std::int64_t>(blockIdx.x) * 2 * inter;  // [token][gate | up]
  const std::int64_t o = static_cast<std::int64_t>(blockIdx.x) * inter;
  for (int i = threadIdx.x; i < inter; i += blockDim.x) {
    const float g = __bfloat162float(gate_up[in + i]), u = __bfloat162float(gate_up[in + inter + i]);
    out[o + i] = __float2bfloat16_rn(g / (1.0f + __expf(-g)) * u);
  }
}

// One block per token; threads over (head, pair i < head_dim / 2).
__global__ void rope_kernel(bf16* __restrict__ q, bf16* __restrict__ k, const std::int32_t* __restrict__ positions,
                            const float* __restrict__ inv_freq, int q_heads, int kv_heads, int head_dim) {
  const int t = blockIdx.x, half = head_dim / 2;
  const double pos = positions[t];
  for (int idx = threadIdx.x; idx < (q_heads + kv_heads) * half; idx += blockDim.x) {
    const int h = idx / half, i = idx % half;
    // The angle in double, reduced to [0, 2 pi), keeps fp32 sin/cos accurate at long positions.
    const float a = static_cast<float>(fmod(pos * static_cast<double>(inv_freq[i]), 6.283185307179586));
    float s, c;
    sincosf(a, &s, &c);
    bf16* v = h < q_heads ? q + (static_cast<std::int64_t>(t) * q_heads + h) * head_dim
                          : k + (static_cast<std::int64_t>(t) * kv_heads + (h - q_heads)) * head_dim;
    const float x0 = __bfloat162float(v[i]), x1 = __bfloat162float(v[i + half]);
    v[i] = __float2bfloat16_rn(x0 * c - x1 * s);
    v[i + half] = __float2bfloat16_rn(x1 * c + x0 * s);
  }
}

__global__ void argmax_kernel(const bf16* __restrict__ logits, std::int32_t* __restrict__ ids, int vocab) {
  const std::int64_t base = static_cast<std::int64_t>(blockIdx.x) * vocab;
  float best = -INFINITY;
  int best_i = vocab;  // larger than any index: loses every tie
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    const float v = __bfloat162float(logits[base + i]);
    if (v > best || (v == best && i < best_i)) {
      best = v;
      best_i = i;
    }
  }
  // Warp then block reduction on (value, index), lower index winning ties.
  for (int o = 16; o > 0; o /= 2) {
    const float ov = __shfl_xor_sync(0xffffffffu, best, o);
    const int oi = __shfl_xor_sync(0xffffffffu, best_i, o);
    if (ov > best || (ov == best && oi < best_i)) {
      best = ov;
      best_i = oi;
    }
  }
  __shared__ float sv[32];
  __shared__ int si[32];
  if (threadIdx.x % 32 == 0) {
    sv[threadIdx.x / 32] = best;
    si[threadIdx.x / 32] = best_i;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < static_cast<int>(blockDim.x / 32); ++w)
      if (sv[w] > best || (sv[w] == best && si[w] < best_i)) {
        best = sv[w];
        best_i = si[w];
      }
    ids[blockIdx.x] = best_i < vocab ? best_i : 0;  // an all-NaN row yields 0
  }
}

// One block per token.
__global__ void split_qkv_kernel(const bf16* __restrict__ qkv, const bf16* __restrict__ bias, bf16* __restrict__ q,
                                 bf16* __restrict__ k, bf16* __restrict__ v, int q_width, int kv_width) {
  const int width = q_width + 2 * kv_width;
  const std::int64_t t = blockIdx.x;
  for (int j = threadIdx.x; j < width; j += blockDim.x) {
    bf16 x = qkv[t * width + j];
    if (bias) x = __float2bfloat16_rn(__bfloat162float(x) + __bfloat162float(bias[j]));
    if (j < q_width) q[t * q_width + j] = x;
    else if (j < q_width + kv_width) k[t * kv_width + (j - q_width)] = x;
    else v[t * kv_width + (j - q_width - kv_width)] = x;
  }
}

// max|x| as the bits of a non-negative float: their integer order is the float order.
__global__ void absmax_kernel(const bf16* __restrict__ x, std::int64_t n, unsigned int* __restrict__ bits) {
  float m = 0;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    m = fmaxf(m, fabsf(__bfloat162float(x[i])));
  m = warp_max(m);
  if (threadIdx.x % 32 == 0) atomicMax(bits, __float_as_uint(m));
}

__global__ void fp8_scale_kernel(float* scale) {
  const float absmax = __uint_as_float(*reinterpret_cast<unsigned int*>(scale));
  *scale = absmax > 0 ? absmax / 448.0f : 1.0f;
}

__global__ void quantize_fp8_kernel(const bf16* __restrict__ x, std::int64_t n, __nv_fp8_storage_t* __restrict__ out,
                                    const float* __restrict__ scale) {
  const float s = *scale;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    out[i] = __nv_cvt_float_to_fp8(__bfloat162float(x[i]) / s, __NV_SATFINITE, __NV_E4M3);
}

// ---- version 2 ----
// Why v2: v1 reads 2 bytes per access, one block per row, and RMSNorm reads
// its input twice; v2 moves 16 bytes per access, keeps the row in registers
// (fused with the residual add that precedes every norm), and reduces each
// token's RoPE angles once per frequency instead of once per head.

constexpr int v2_threads = 256;
constexpr int v2_max_chunks = 8;  // 8 x 8 bf16 per thread: rows up to 256 x 64 = 16,384 wide

// One block per row, the row's 8-element chunks spread over the threads and kept in registers.
// residual_out may be residual itself (in place): each thread reads its chunks before writing them.
__global__ void __launch_bounds__(v2_threads) add_rms_norm_kernel_v2(const bf16* __restrict__ x, const bf16* res,
                                                                     const bf16* __restrict__ w, bf16* res_out,
                                                                     bf16* __restrict__ out, int hidden, float eps) {
  const std::int64_t base = static_cast<std::int64_t>(blockIdx.x) * hidden;
  const int chunks = hidden / 8;
  float r[v2_max_chunks][8];
  float ss = 0;
#pragma unroll
  for (int c = 0; c < v2_max_chunks; ++c) {
    const int idx = threadIdx.x + c * v2_threads;
    if (idx >= chunks) break;
    float a[8], b[8];
    unpack_bf16x8(*reinterpret_cast<const uint4*>(x + base + idx * 8), a);
    unpack_bf16x8(*reinterpret_cast<const uint4*>(res + base + idx * 8), b);
#pragma unroll
    for (int i = 0; i < 8; ++i) r[c][i] = __bfloat162float(__float2bfloat16_rn(a[i] + b[i]));  // the residual as stored
    *reinterpret_cast<uint4*>(res_out + base + idx * 8) = pack_bf16x8(r[c]);
#pragma unroll
    for (int i = 0; i < 8; ++i) ss += r[c][i] * r[c][i];
  }
  const float inv = rsqrtf(block_sum(ss) / static_cast<float>(hidden) + eps);
#pragma unroll
  for (int c = 0; c < v2_max_chunks; ++c) {
    const int idx = threadIdx.x + c * v2_threads;
    if (idx >= chunks) break;
    float wf[8], o[8];
    unpack_bf16x8(*reinterpret_cast<const uint4*>(w + idx * 8), wf);
#pragma unroll
    for (int i = 0; i < 8; ++i) o[i] = r[c][i] * inv * wf[i];
    *reinterpret_cast<uint4*>(out + base + idx * 8) = pack_bf16x8(o);
  }
}

__global__ void silu_mul_kernel_v2(const bf16* __restrict__ gate_up, bf16* __restrict__ out, int inter, std::int64_t chunks) {
  const int per_row = inter / 8;
  for (std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < chunks;
       c += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t t = c / per_row, j = c % per_row;
    float g[8], u[8], o[8];
    unpack_bf16x8(*reinterpret_cast<const uint4*>(gate_up + t * 2 * inter + j * 8), g);  // [token][gate | up]
    unpack_bf16x8(*reinterpret_cast<const uint4*>(gate_up + t * 2 * inter + inter + j * 8), u);
#pragma unroll
    for (int i = 0; i < 8; ++i) o[i] = g[i] / (1.0f + __expf(-g[i])) * u[i];
    *reinterpret_cast<uint4*>(out + t * inter + j * 8) = pack_bf16x8(o);
  }
}

// One block per token: its head_dim / 2 angles reduced once into shared memory, then every head's pairs.
__global__ void rope_kernel_v2(bf16* __restrict__ q, bf16* __restrict__ k, const std::int32_t* __restrict__ positions,
                               const float* __restrict__ inv_freq, int q_heads, int kv_heads, int head_dim) {
  __shared__ float s_cos[512], s_sin[512];
  const int t = blockIdx.x, half = head_dim / 2;
  const double pos = positions[t];
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    // As v1: the angle in double, reduced to [0, 2 pi), so fp32 sin/cos stay accurate at long positions.
    const float a = static_cast<float>(fmod(pos * static_cast<double>(inv_freq[i]), 6.283185307179586));
    sincosf(a, &s_sin[i], &s_cos[i]);
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < (q_heads + kv_heads) * half; idx += blockDim.x) {
    const int h = idx / half, i = idx % half;
    bf16* v = h < q_heads ? q + (static_cast<std::int64_t>(t) * q_heads + h) * head_dim
                          : k + (static_cast<std::int64_t>(t) * kv_heads + (h - q_heads)) * head_dim;
    const float x0 = __bfloat162float(v[i]), x1 = __bfloat162float(v[i + half]);
    const float c = s_cos[i], s = s_sin[i];
    v[i] = __float2bfloat16_rn(x0 * c - x1 * s);
    v[i + half] = __float2bfloat16_rn(x1 * c + x0 * s);
  }
}

}  // namespace

void add_rms_norm_v2(const void* x, const void* residual, const void* w, void* residual_out, void* out, int tokens,
                     int hidden, float eps, cudaStream_t stream) {
  if (tokens == 0) return;
  if (hidden % 8 != 0 || hidden > v2_threads * v2_max_chunks * 8) {  // the two-pass path
    residual_add(x, residual, residual_out, static_cast<std::int64_t>(tokens) * hidden, stream);
    rms_norm(residual_out, w, out, tokens, hidden, eps, stream);
    return;
  }
  add_rms_norm_kernel_v2<<<tokens, v2_threads, 0, stream>>>(static_cast<const bf16*>(x), static_cast<const bf16*>(residual),
                                                            static_cast<const bf16*>(w), static_cast<bf16*>(residual_out),
                                                            static_cast<bf16*>(out), hidden, eps);
  GPUCAL_CUDA_CHECK(cudaGetLastError());
}

void silu_mul_v2(const void* gate_up, void* out, int tokens, int inter, cudaStream_t stream) {
  if (tokens == 0 || inter == 0) return;
  if (inter % 8 != 0) {
    silu_mul(gate_up, out, tokens, inter, stream);
    return;
  }
  const std::int64_t chunks = static_cast<std::int64_t>(tokens) * (inter / 8);
  const int grid = static_cast<int>(std::min<std::int64_t>((chunks + 255) / 256, 8192));
  silu_mul_kernel_v2<<<grid, 256, 0, stream>>>(static_cast<const bf16*>(gate_up), static_cast<bf16*>(out), inter, chunks);
  GPUCAL_CUDA_CHECK(cudaGetLastError());
}

void rope_v2(void* q, void* k, const std::int32_t* positions, const float* inv_freq, int tokens, int q_heads,
             int kv_heads, int head_dim, cudaStream_t stream) {
  if (tokens == 0) return;
  if (head_dim > 1024 || head_dim % 2 != 0) throw std::invalid_argument("rope_v2: head_dim must be even and at most 1024");
  rope_kernel_v2<<<tokens, 256, 0, stream>>>(static_cast<bf16*>(q), static_cast<bf16*>(k), positions, inv_freq, q_heads,
                                             kv_heads, head_dim);
  GPUCAL_CUDA_CHECK(cudaGetLastError());
}

void split_qkv(const void* qkv, const void* bias, void* q, void* k, void* v, int tokens, int q_width, int kv_width,
               cudaStream_t stream) {
  if (tokens == 0) return;
  split_qkv_kernel<<<tokens, 256, 0, stream>>>(static_cast<const bf16*>(qkv), static_cast<const bf16*>(bias),
                                               static_cast<bf16*>(q), static_cast<bf16*>(k), static_cast<bf16*>(v),
                                               q_width, kv_width);
  GPUCAL_CUDA_CHECK(cudaGetLastError());
}

void quantize_fp8_per_tensor(const void* x, std::int64_t n, void* out, float* scale, cudaStream_t stream) {
  if (n == 0) return;
  const int grid = static_cast<int>(std::min<std::int64_t>((n + 255) / 256, 2048));
  GPUCAL_CUDA_CHECK(cudaMemsetAsync(scale, 0, sizeof(float), stream));
  absmax_kernel<<<grid, 256, 0, stream>>>(static_cast<const bf16*>(x), n, reinterpret_cast<unsigned int*>(scale));
  GPUCAL_CUDA_CHECK(cudaGetLastError());
  fp8_scale_kernel<<<1, 1, 0, stream>>>(scale);
  GPUCAL_CUDA_CHECK(cudaGetLastError());
  quantize_fp8_kernel<<<grid, 256, 0, stream>>>(static_cast<const bf16*>(x), n,
                                                static_cast<__nv_fp8_storage_t*>(out), scale);
  GPUCAL_CUDA_CHECK(cudaGetLastError());
}

void embedding_gather(const std::int32_t* ids, const void* table, void* out, int tokens, int hidden, cudaStream_t stream) {
  if (tokens == 0) return;
  embedding_kernel<<<tokens, 256, 0, stream>>>(ids, static_cast<const bf16*>(table), static_cast<bf16*>(out), hidden);
  GPUCAL_CUDA_CHECK(cudaGetLastError());
}

void rms_norm(const void* x, const void* w, void* out, int tokens, int hidden, float eps, cudaStream_t stream) {
  if (tokens == 0) return;
  rms_norm_kernel<<<tokens, 256, 0, stream>>>(static_cast<const bf16*>(x), static_cast<const bf16*>(w),
                                              static_cast<bf16*>(out), hidden, eps);
  GPUCAL_CUDA_CHECK(cudaGetLastError());
}

void residual_add(const void* a, const void* b, void* out, std::int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  const int grid = static_cast<int>(std::min<std::int64_t>((n + 255) / 256, 4096));
  residual_add_kernel<<<grid, 256, 0, stream>>>(static_cast<const bf16*>(a), static_cast<const bf16*>(b),
                                                static_cast<bf16*>(out), n);
  GPUCAL_CUDA_CHECK(cudaGetLastError());
}

void silu_mul(const void* gate_up, void* out, int tokens, int inter, cudaStream_t stream) {
  if (tokens == 0) return;
  silu_mul_kernel<<<tokens, 256, 0, stream>>>(static_cast<const bf16*>(gate_up), static_cast<bf16*>(out), inter);
  GPUCAL_CUDA_CHECK(cudaGetLastError());
}

void rope(void* q, void* k, const std::int32_t* positions, const float* inv_freq, int tokens, int q_heads,
          int kv_heads, int head_dim, cudaStream_t stream) {
  if (tokens == 0) return;
  rope_kernel<<<tokens, 256, 0, stream>>>(static_cast<bf16*>(q), static_cast<bf16*>(k), positions, inv_freq, q_heads,
                                          kv_heads, head_dim);
  GPUCAL_CUDA_CHECK(cudaGetLastError());
}

void argmax(const void* logits, std::int32_t* ids, int rows, int vocab, cudaStream_t stream) {
  if (rows == 0) return;
  argmax_kernel<<<rows, 512, 0, stream>>>(static_cast<const bf16*>(logits), ids, vocab);
  GPUCAL_CUDA_CHECK(cudaGetLastError());
}

}  // namespace gpucal::kernels
