// Bandwidth probes and device-side random fills (see bandwidth.hpp).
//
// Napkin math for an H100 SXM: 3.35 TB/s datasheet HBM3; a 4 GiB copy moves
// 8 GiB and should take about 2.9 ms at 2.95 TB/s. Each thread handles
// 16-byte vectors in a grid-stride loop; the grid is a few blocks per SM so
// enough loads are in flight to cover HBM latency.
//
// read_kernel_v2, copy_kernel_v2: several sweeps inside one launch, through
// L2 only (ld/st.global.cg), because a 1 MiB sweep takes about 0.2 us at L2
// speed against about 2 us of launch gap: v1 measures the launch rate there.
#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include "gpucal/kernels/bandwidth.hpp"
#include "gpucal/kernels/cuda_check.hpp"

namespace gpucal::kernels {

namespace {

// Grid-stride loop indices of this thread.
__device__ __forceinline__ std::size_t thread_index() {
  return static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ std::size_t thread_stride() { return static_cast<std::size_t>(gridDim.x) * blockDim.x; }

// Warp then block reduction of each thread's sum; one word per block.
__device__ __forceinline__ void block_sum(std::uint32_t sum, std::uint32_t* __restrict__ block_sums) {
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_down_sync(0xffffffffu, sum, offset);
  __shared__ std::uint32_t warp_sums[bandwidth_block_threads / 32];
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = sum;
  __syncthreads();
  if (threadIdx.x == 0) {
    std::uint32_t total = 0;
    for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) total += warp_sums[w];
    block_sums[blockIdx.x] = total;
  }
}

__global__ void read_kernel(const uint4* __restrict__ src, std::size_t vectors, const std::uint32_t* __restrict__ tail,
                            std::size_t tail_words, std::uint32_t* __restrict__ block_sums) {
  std::uint32_t sum = 0;
  for (std::size_t i = thread_index(); i < vectors; i += thread_stride()) {
    const uint4 v = src[i];  // [vector] 16 bytes
    sum += v.x + v.y + v.z + v.w;
  }
  for (std::size_t i = thread_index(); i < tail_words; i += thread_stride()) sum += tail[i];
  block_sum(sum, block_sums);
}

__global__ void write_kernel(uint4* __restrict__ dst, std::size_t vectors, std::uint8_t* __restrict__ tail,
                             std::size_t tail_bytes, std::uint32_t pattern) {
  const uint4 v = make_uint4(pattern, pattern, pattern, pattern);
  for (std::size_t i = thread_index(); i < vectors; i += thread_stride()) dst[i] = v;
  // The tail starts at a multiple of 16 bytes, so its byte j sits at offset j mod 4 of the pattern.
  for (std::size_t j = thread_index(); j < tail_bytes; j += thread_stride())
    tail[j] = static_cast<std::uint8_t>(pattern >> (8 * (j % 4)));
}

__global__ void copy_kernel(uint4* __restrict__ dst, const uint4* __restrict__ src, std::size_t vectors,
                            std::uint8_t* __restrict__ dst_tail, const std::uint8_t* __restrict__ src_tail,
                            std::size_t tail_bytes) {
  for (std::size_t i = thread_index(); i < vectors; i += thread_stride()) dst[i] = src[i];
  for (std::size_t j = thread_index(); j < tail_bytes; j += thread_stride()) dst_tail[j] = src_tail[j];
}

__global__ void triad_kernel(float4* __restrict__ a, const float4* __restrict__ b, const float4* __restrict__ c,
                             float s, std::size_t vectors, float* __restrict__ a_tail, const float* __restrict__ b_tail,
                             const float* __restrict__ c_tail, std::size_t tail) {
  for (std::size_t i = thread_index(); i < vectors; i += thread_stride()) {
    const float4 bv = b[i], cv = c[i];
    a[i] = make_float4(__fmaf_rn(s, cv.x, bv.x), __fmaf_rn(s, cv.y, bv.y), __fmaf_rn(s, cv.z, bv.z),
                       __fmaf_rn(s, cv.w, bv.w));
  }
  for (std::size_t j = thread_index(); j < tail; j += thread_stride()) a_tail[j] = __fmaf_rn(s, c_tail[j], b_tail[j]);
}

// 16-byte loads and stores cached in L2 only (not L1), volatile so no sweep is
// merged with the one before it.
__device__ __forceinline__ uint4 load_cg(const uint4* p) {
  uint4 v;
  asm volatile("ld.global.cg.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
}
__device__ __forceinline__ void store_cg(uint4* p, uint4 v) {
  asm volatile("st.global.cg.v4.u32 [%0], {%1, %2, %3, %4};" ::"l"(p), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w) : "memory");
}

__global__ void read_kernel_v2(const uint4* __restrict__ src, std::size_t vectors, const std::uint32_t* __restrict__ tail,
                               std::size_t tail_words, int passes, std::uint32_t* __restrict__ block_sums) {
  std::uint32_t sum = 0;
  for (int pass = 0; pass < passes; ++pass) {
    for (std::size_t i = thread_index(); i < vectors; i += thread_stride()) {
      const uint4 v = load_cg(src + i);  // [vector] 16 bytes, from L2
      sum += v.x + v.y + v.z + v.w;
    }
    for (std::size_t i = thread_index(); i < tail_words; i += thread_stride()) sum += tail[i];
  }
  block_sum(sum, block_sums);
}

__global__ void copy_kernel_v2(uint4* __restrict__ dst, const uint4* __restrict__ src, std::size_t vectors,
                               std::uint8_t* __restrict__ dst_tail, const std::uint8_t* __restrict__ src_tail,
                               std::size_t tail_bytes, int passes) {
  for (int pass = 0; pass < passes; ++pass) {
    for (std::size_t i = thread_index(); i < vectors; i += thread_stride()) store_cg(dst + i, load_cg(src + i));
    for (std::size_t j = thread_index(); j < tail_bytes; j += thread_stride()) dst_tail[j] = src_tail[j];
  }
}

// splitmix64: a counter-based hash, so any element's value depends only on (seed, index).
__device__ __forceinline__ std::uint64_t mix(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
__device__ __forceinline__ float uniform(std::uint64_t seed, std::size_t i, float lo, float hi) {
  const float u = static_cast<float>(mix(seed ^ mix(i)) >> 40) * (1.0f / 16777216.0f);  // [0, 1), 24 bits
  return lo + (hi - lo) * u;
}

__global__ void fill_bytes_kernel(std::uint8_t* dst, std::size_t bytes, std::uint64_t seed) {
  for (std::size_t i = thread_index(); i < bytes; i += thread_stride())
    dst[i] = static_cast<std::uint8_t>(mix(seed ^ mix(i)));
}
__global__ void fill_bf16_kernel(__nv_bfloat16* dst, std::size_t n, float lo, float hi, std::uint64_t seed) {
  for (std::size_t i = thread_index(); i < n; i += thread_stride()) dst[i] = __float2bfloat16_rn(uniform(seed, i, lo, hi));
}
__global__ void fill_fp8_kernel(__nv_fp8_storage_t* dst, std::size_t n, float lo, float hi, std::uint64_t seed) {
  for (std::size_t i = thread_index(); i < n; i += thread_stride())
    dst[i] = __nv_cvt_float_to_fp8(uniform(seed, i, lo, hi), __NV_SATFINITE, __NV_E4M3);
}
__global__ void fill_int8_kernel(std::int8_t* dst, std::size_t n, std::uint64_t seed) {
  for (std::size_t i = thread_index(); i < n; i += thread_stride())
    dst[i] = static_cast<std::int8_t>(static_cast<int>(mix(seed ^ mix(i)) % 255) - 127);
}
__global__ void fill_f32_kernel(float* dst, std::size_t n, float lo, float hi, std::uint64_t seed) {
  for (std::size_t i = thread_index(); i < n; i += thread_stride()) dst[i] = uniform(seed, i, lo, hi);
}

constexpr int fill_grid = 1024;

}  // namespace

std::string_view bandwidth_op_name(bandwidth_op op) {
  switch (op) {
    case bandwidth_op::read: return "read";
    case bandwidth_op::write: return "write";
    case bandwidth_op::copy: return "copy";
    case bandwidth_op::triad: return "triad";
  }
  return "?";
}

int bandwidth_grid(int sm_count) { return sm_count * 4; }  // 4 x 512 threads: 2048, a full SM's worth of threads

double bandwidth_bytes_moved(bandwidth_op op, std::size_t bytes) {
  const double b = static_cast<double>(bytes);
  switch (op) {
    case bandwidth_op::read:
    case bandwidth_op::write: return b;
    case bandwidth_op::copy: return 2 * b;
    case bandwidth_op::triad: return 3 * b;
  }
  return 0;
}

void bandwidth_read(const void* src, std::size_t bytes, std::uint32_t* block_sums, int grid, cudaStream_t stream) {
  const std::size_t vectors = bytes / 16;
  const auto* tail = reinterpret_cast<const std::uint32_t*>(static_cast<const std::uint8_t*>(src) + vectors * 16);
  read_kernel<<<grid, bandwidth_block_threads, 0, stream>>>(static_cast<const uint4*>(src), vectors, tail,
                                                            (bytes % 16) / 4, block_sums);
  GPUCAL_CUDA_CHECK(cudaGetLastError());
}

void bandwidth_write(void* dst, std::size_t bytes, std::uint32_t pattern, int grid, cudaStream_t stream) {
  const std::size_t vectors = bytes / 16;
  write_kernel<<<grid, bandwidth_block_threads, 0, stream>>>(static_cast<uint4*>(dst), vectors,
                                                             static_cast<std::uint8_t*>(dst) + vectors * 16, bytes % 16,
                                                             pattern);
  GPUCAL_CUDA_CHECK(cudaGetLastError());
}

void bandwidth_copy(void* dst, const void* src, std::size_t bytes, int grid, cudaStream_t stream) {
  const std::size_t vectors = bytes / 16;
  copy_kernel<<<grid, bandwidth_block_threads, 0, stream>>>(
      static_cast<uint4*>(dst), static_cast<const uint4*>(src), vectors, static_cast<std::uint8_t*>(dst) + vectors * 16,
      static_cast<const std::uint8_t*>(src) + vectors * 16, bytes % 16);
  GPUCAL_CUDA_CHECK(cudaGetLastError());
}

void bandwidth_read_v2(const void* src, std::size_t bytes, int passes, std::uint32_t* block_sums, int grid,
                       cudaStream_t stream) {
  const std::size_t vectors = bytes / 16;
  const auto* tail = reinterpret_cast<const std::uint32_t*>(static_cast<const std::uint8_t*>(src) + vectors * 16);
  read_kernel_v2<<<grid, bandwidth_block_threads, 0, stream>>>(static_cast<const uint4*>(src), vectors, tail, (bytes % 16) / 4,
                                                               passes, block_sums);
  GPUCAL_CUDA_CHECK(cudaGetLastError());
}

void bandwidth_copy_v2(void* dst, const void* src, std::size_t bytes, int passes, int grid, cudaStream_t stream) {
  const std::size_t vectors = bytes / 16;
  copy_kernel_v2<<<grid, bandwidth_block_threads, 0, stream>>>(
      static_cast<uint4*>(dst), static_cast<const uint4*>(src), vectors, static_cast<std::uint8_t*>(dst) + vectors * 16,
      static_cast<const std::uint8_t*>(src) + vectors * 16, bytes % 16, passes);
  GPUCAL_CUDA_CHECK(cudaGetLastError());
}

void bandwidth_triad(float* a, const float* b, const float* c, float scalar, std::size_t n, int grid,
                     cudaStream_t stream) {
  const std::size_t vectors = n / 4;
  triad_kernel<<<grid, bandwidth_block_threads, 0, stream>>>(
      reinterpret_cast<float4*>(a), reinterpret_cast<const float4*>(b), reinterpret_cast<const float4*>(c), scalar,
      vectors, a + vectors * 4, b + vectors * 4, c + vectors * 4, n % 4);
  GPUCAL_CUDA_CHECK(cudaGetLastError());
}

void fill_random_bytes(void* dst, std::size_t bytes, std::uint64_t seed, cudaStream_t stream) {
  fill_bytes_kernel<<<fill_grid, 256, 0, stream>>>(static_cast<std::uint8_t*>(dst), bytes, seed);
  GPUCAL_CUDA_CHECK(cudaGetLastError());
}
void fill_random_bf16(void* dst, std::size_t count, float lo, float hi, std::uint64_t seed, cudaStream_t stream) {
  fill_bf16_kernel<<<fill_grid, 256, 0, stream>>>(static_cast<__nv_bfloat16*>(dst), count, lo, hi, seed);
  GPUCAL_CUDA_CHECK(cudaGetLastError());
}
void fill_random_fp8_e4m3(void* dst, std::size_t count, float lo, float hi, std::uint64_t seed, cudaStream_t stream) {
  fill_fp8_kernel<<<fill_grid, 256, 0, stream>>>(static_cast<__nv_fp8_storage_t*>(dst), count, lo, hi, seed);
  GPUCAL_CUDA_CHECK(cudaGetLastError());
}
void fill_random_int8(void* dst, std::size_t count, std::uint64_t seed, cudaStream_t stream) {
  fill_int8_kernel<<<fill_grid, 256, 0, stream>>>(static_cast<std::int8_t*>(dst), count, seed);
  GPUCAL_CUDA_CHECK(cudaGetLastError());
}
void fill_random_f32(float* dst, std::size_t count, float lo, float hi, std::uint64_t seed, cudaStream_t stream) {
  fill_f32_kernel<<<fill_grid, 256, 0, stream>>>(dst, count, lo, hi, seed);
  GPUCAL_CUDA_CHECK(cudaGetLastError());
}

}  // namespace gpucal::kernels
