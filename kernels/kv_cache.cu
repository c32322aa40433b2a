// Paged KV pool and KV append (see kv_cache.hpp).
#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <stdexcept>

#include "gpucal/kernels/cuda_check.hpp"
#include "gpucal/kernels/device_query.hpp"
#include "gpucal/kernels/kv_cache.hpp"

namespace gpucal::kernels {

namespace {

// One block per sequence; threads stride over kv_heads x head_dim.
template <typename Out>
__global__ void kv_append_kernel(const __nv_bfloat16* __restrict__ k_new, const __nv_bfloat16* __restrict__ v_new,
                                 const std::int64_t* __restrict__ slots, Out* __restrict__ k_cache,
                                 Out* __restrict__ v_cache, float inv_k_scale, float inv_v_scale, int row) {
  const std::int64_t slot = slots[blockIdx.x];
  if (slot < 0) return;  // padding
  const std::int64_t src = static_cast<std::int64_t>(blockIdx.x) * row;  // [seq][kv_head][dim]
  const std::int64_t dst = slot * row;                                    // [block][offset] flattened into slots
  for (int i = threadIdx.x; i < row; i += blockDim.x) {
    if constexpr (sizeof(Out) == 2) {
      k_cache[dst + i] = k_new[src + i];
      v_cache[dst + i] = v_new[src + i];
    } else {
      k_cache[dst + i] = __nv_cvt_float_to_fp8(__bfloat162float(k_new[src + i]) * inv_k_scale, __NV_SATFINITE, __NV_E4M3);
      v_cache[dst + i] = __nv_cvt_float_to_fp8(__bfloat162float(v_new[src + i]) * inv_v_scale, __NV_SATFINITE, __NV_E4M3);
    }
  }
}

int elem_bytes(kv_dtype d) { return d == kv_dtype::bf16 ? 2 : 1; }

}  // namespace

kv_pool::kv_pool(const kv_cache_shape& shape, std::int64_t num_blocks, kv_dtype dtype)
    : shape_(shape), num_blocks_(num_blocks), dtype_(dtype) {
  if (shape.dtype_bytes != elem_bytes(dtype)) throw std::invalid_argument("kv_pool: shape.dtype_bytes does not match dtype");
  if (num_blocks <= 0) throw std::invalid_argument("kv_pool: the budget holds no block");
  const auto layer_bytes = static_cast<std::size_t>(2 * half_elements() * elem_bytes(dtype));
  for (std::int64_t l = 0; l < shape.layers; ++l) layers_.emplace_back(layer_bytes);
}

kv_pool kv_pool::from_budget(const kv_cache_shape& shape, std::int64_t budget_bytes, kv_dtype dtype) {
  return kv_pool(shape, shape.blocks_for_budget(budget_bytes), dtype);
}

kv_pool kv_pool::from_free_memory(const kv_cache_shape& shape, double utilization, kv_dtype dtype) {
  if (!(utilization > 0 && utilization <= 1)) throw std::invalid_argument("kv_pool: utilization outside (0, 1]");
  return from_budget(shape, static_cast<std::int64_t>(static_cast<double>(free_device_bytes()) * utilization), dtype);
}

std::int64_t kv_pool::half_elements() const {
  return num_blocks_ * shape_.block_size * shape_.kv_heads * shape_.head_dim;
}
void* kv_pool::k(std::int64_t layer) const { return layers_.at(static_cast<std::size_t>(layer)).data(); }
void* kv_pool::v(std::int64_t layer) const {
  return layers_.at(static_cast<std::size_t>(layer)).data() + half_elements() * elem_bytes(dtype_);
}

void kv_append(const void* k_new, const void* v_new, const std::int64_t* slot_mapping, void* k_cache, void* v_cache,
               kv_dtype dtype, float k_scale, float v_scale, int batch, int kv_heads, int head_dim,
               cudaStream_t stream) {
  if (batch == 0) return;
  const int row = kv_heads * head_dim;
  const auto* k = static_cast<const __nv_bfloat16*>(k_new);
  const auto* v = static_cast<const __nv_bfloat16*>(v_new);
  if (dtype == kv_dtype::bf16) {
    kv_append_kernel<__nv_bfloat16><<<batch, 256, 0, stream>>>(k, v, slot_mapping, static_cast<__nv_bfloat16*>(k_cache),
                                                               static_cast<__nv_bfloat16*>(v_cache), 1, 1, row);
  } else {
    kv_append_kernel<__nv_fp8_storage_t><<<batch, 256, 0, stream>>>(
        k, v, slot_mapping, static_cast<__nv_fp8_storage_t*>(k_cache), static_cast<__nv_fp8_storage_t*>(v_cache),
        1.0f / k_scale, 1.0f / v_scale, row);
  }
  GPUCAL_CUDA_CHECK(cudaGetLastError());
}

}  // namespace gpucal::kernels
