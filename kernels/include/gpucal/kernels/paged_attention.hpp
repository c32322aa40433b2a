// Paged decode attention: one query token per sequence against its cached
// context, read through a block table. GQA/MQA (q_heads a multiple of
// kv_heads, up to 8 query heads per KV head), head_dim 64 or 128, any block
// size, bf16 or fp8 e4m3 KV. Online softmax in FP32; the context is split
// into partitions processed in parallel, then a reduction pass combines them.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "gpucal/kernels/kv_cache.hpp"

namespace gpucal::kernels {

/// What decode and prefill attention share: the queries, the paged cache of
/// one layer read through block tables, the head shape and the output.
struct paged_attention_common {
  const void* q = nullptr;                ///< [rows][q_heads][head_dim] bf16
  const void* k_cache = nullptr;          ///< [num_blocks][block_size][kv_heads][head_dim]
  const void* v_cache = nullptr;
  kv_dtype cache_dtype = kv_dtype::bf16;
  float k_scale = 1, v_scale = 1;         ///< fp8: stored value x scale = true value
  const std::int32_t* block_tables = nullptr;  ///< rows of max_blocks_per_seq entries
  int max_blocks_per_seq = 0;
  void* out = nullptr;                    ///< [rows][q_heads][head_dim] bf16
  int q_heads = 0, kv_heads = 0, head_dim = 128, block_size = 16;
  float scale = 0;                        ///< softmax scale, usually 1 / sqrt(head_dim)
};

/// Decode: row b of q is sequence b's one query; block_tables row b is its table.
struct paged_attention_args : paged_attention_common {
  const std::int32_t* context_lens = nullptr;  ///< [batch]
  void* workspace = nullptr;              ///< paged_attention_workspace_bytes()
  int batch = 0;
  int max_context_len = 0;                ///< upper bound on context_lens, sizes the partition grid
  int partition_tokens = 512;             ///< context tokens per partition (a multiple of 4)
};

std::size_t paged_attention_workspace_bytes(const paged_attention_args& a);

/// Checks the arguments (throws std::invalid_argument naming the field) and launches both passes.
void paged_attention(const paged_attention_args& a, cudaStream_t stream);

/// Version 2 (flash-decoding; kernels/paged_attention.cu): wide K/V loads
/// with several tokens' loads in flight, the partition's block-table slice in
/// shared memory, the GQA group as a template bucket (1, 2, 4, 8), and
/// partitions sized by choose_attention_split for the current device instead
/// of `partition_tokens` (which it ignores). Same arguments, same results;
/// head_dim 256 too (Gemma 2 and 3), which version 1 refuses.
std::size_t paged_attention_v2_workspace_bytes(const paged_attention_args& a);
void paged_attention_v2(const paged_attention_args& a, cudaStream_t stream);

/// KV bytes one call reads: every cached token's K and V for every KV head.
double paged_attention_kv_bytes(std::int64_t total_context_tokens, int kv_heads, int head_dim, kv_dtype dtype);

}  // namespace gpucal::kernels
