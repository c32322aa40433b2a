// Causal prefill attention over the paged KV cache (chunked prefill): each
// sequence's chunk of query tokens against its cached prefix plus the chunk
// itself (whose K and V are already appended), FlashAttention-2 style on
// tensor cores (mma.sync m16n8k16 bf16, online softmax in FP32). GQA/MQA
// (q_heads a multiple of kv_heads), head_dim 64 or 128, any block size,
// bf16 or fp8 e4m3 KV.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "gpucal/kernels/paged_attention.hpp"

namespace gpucal::kernels {

/// Rows of q and out: each sequence's chunk, its rows consecutive.
struct prefill_attention_args : paged_attention_common {
  const std::int32_t* table_rows = nullptr;    ///< [sequences] block_tables row of sequence s; nullptr: row s
  const std::int32_t* query_starts = nullptr;  ///< [sequences] first row of sequence s in q and out
  const std::int32_t* query_lens = nullptr;    ///< [sequences] query tokens of this chunk (0 allowed)
  const std::int32_t* context_lens = nullptr;  ///< [sequences] cached tokens including the chunk
  int sequences = 0, max_query_len = 0;        ///< max_query_len bounds query_lens, sizes the grid
};

/// Query i of sequence s sits at position context_lens[s] - query_lens[s] + i
/// and attends to cached tokens 0..that position (context_lens[s] >=
/// query_lens[s]; a row left without keys gets zeros). Checks the arguments
/// (throws std::invalid_argument naming the field) and launches the kernel.
void prefill_attention(const prefill_attention_args& a, cudaStream_t stream);

/// Version 2 (kernels/prefill_attention.cu): K and V tiles copied with
/// cp.async into two shared-memory buffers, the next tile landing while the
/// current one is computed, V kept row-major. Same arguments and results;
/// fp8 KV runs version 1.
void prefill_attention_v2(const prefill_attention_args& a, cudaStream_t stream);

/// FLOPs of the causal product for one sequence's chunk (QK^T and PV over
/// the attended pairs, 4 x head_dim per pair and query head).
double prefill_attention_flops(std::int64_t query_len, std::int64_t context_len, int q_heads, int head_dim);

}  // namespace gpucal::kernels
