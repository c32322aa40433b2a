// The paged KV cache on the device: one allocation per layer laid out
// [2][num_blocks][block_size][kv_heads][head_dim] (K blocks, then V blocks),
// bf16 or fp8 e4m3 with a per-tensor scale, sized from a byte budget or a
// share of free memory with the same arithmetic as the memory model
// (kv_cache_shape); and the append kernel that writes one step's K and V
// through a slot mapping (slot = block x block_size + offset; < 0 skips).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "gpucal/kernels/block_allocator.hpp"
#include "gpucal/kernels/device_buffer.hpp"

namespace gpucal::kernels {

enum class kv_dtype { bf16, fp8_e4m3 };

class kv_pool {
public:
  /// `num_blocks` blocks of `shape` (shape.layers allocations).
  kv_pool(const kv_cache_shape& shape, std::int64_t num_blocks, kv_dtype dtype);
  /// As many blocks as `budget_bytes` holds.
  static kv_pool from_budget(const kv_cache_shape& shape, std::int64_t budget_bytes, kv_dtype dtype);
  /// As many blocks as `utilization` x the device's free memory holds.
  static kv_pool from_free_memory(const kv_cache_shape& shape, double utilization, kv_dtype dtype);

  const kv_cache_shape& shape() const { return shape_; }
  std::int64_t num_blocks() const { return num_blocks_; }
  kv_dtype dtype() const { return dtype_; }
  /// Elements in one layer's K (or V) half: num_blocks x block_size x kv_heads x head_dim.
  std::int64_t half_elements() const;
  void* k(std::int64_t layer) const;
  void* v(std::int64_t layer) const;

private:
  kv_cache_shape shape_;
  std::int64_t num_blocks_;
  kv_dtype dtype_;
  std::vector<device_buffer<std::uint8_t>> layers_;
};

/// k_new, v_new: [batch][kv_heads][head_dim] bf16. fp8 caches store x / scale.
void kv_append(const void* k_new, const void* v_new, const std::int64_t* slot_mapping, void* k_cache, void* v_cache,
               kv_dtype dtype, float k_scale, float v_scale, int batch, int kv_heads, int head_dim,
               cudaStream_t stream);

}  // namespace gpucal::kernels
