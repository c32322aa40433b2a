// The KV cache and recurrent state as a paged engine allocates them: one
// cache spec per layer (vLLM's KVCacheSpec: full, sliding-window and chunked
// attention pay per token, MLA latents and sparse-attention indexers too;
// linear-attention and Mamba layers hold a fixed state per request), then
// vLLM's hybrid allocator: one page size across layer groups, attention
// blocks enlarged to the state size, groups sharing one pool of blocks.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gpucal/model/dtype.hpp"
#include "gpucal/model/model_spec.hpp"

namespace gpucal::model {

enum class cache_kind { full, sliding, chunked, state };

std::string_view cache_kind_name(cache_kind k);

/// One layer's cache on one GPU (a DSA layer has two: its MLA latent and its indexer keys).
struct layer_cache {
  cache_kind kind = cache_kind::full;
  std::string what;                 ///< "attention", "mla", "indexer", "gated_deltanet", "kda", "mamba2"
  std::int64_t layer = 0;
  std::int64_t bytes_per_token = 0;  ///< per token (attention kinds); per entry when tokens_per_entry > 1
  std::int64_t tokens_per_entry = 1; ///< compressed caches keep one entry per this many tokens
  std::int64_t window_tokens = 0;    ///< sliding window or chunk
  std::int64_t state_bytes = 0;      ///< per request (state kind): convolution + recurrent state
  std::int64_t conv_state_bytes = 0;
  std::int64_t checkpoint_alignment = 1;  ///< tokens a prefix-caching state checkpoint aligns to (FlashInfer GDN: 64)
  int checkpoint_blocks = 0;              ///< extra state blocks per request when prefix caching keeps checkpoints
  bool mla = false;
};

/// What the engine does with these specs (from the engine profile).
struct kv_cache_rules {
  std::int64_t block_size = 16;       ///< attention block size before hybrid alignment
  int in_flight_batches = 1;          ///< scheduler batches in flight (2 with async scheduling)
  bool hybrid_allocator = true;       ///< layer groups sharing one pool (vLLM's hybrid KV cache manager)
  bool state_prefix_caching = false;  ///< state layers keep prefix-caching checkpoints (vLLM "align" mode)
  bool capacity_by_concurrency = true;  ///< tokens = floor(num_blocks / blocks per request x max_model_len); else num_blocks / groups x block_size
  std::int64_t mla_state_align = 128;   ///< hybrid models with MLA align attention blocks to this
};

struct kv_cache_options {
  dtype kv_dtype = dtype::bfloat16;
  dtype model_dtype = dtype::bfloat16;
  int tp = 1;
  int compute_major = 9;  ///< GPU compute capability major: sparse-MLA fp8 layouts differ on Hopper and Blackwell
};

/// One spec per layer cache, per GPU.
std::vector<layer_cache> layer_caches(const model_spec& m, const kv_cache_options& o);

/// A group of layers with one block table.
struct kv_group {
  cache_kind kind = cache_kind::full;
  std::string what;
  std::int64_t layers = 0;          ///< layers in the group
  std::int64_t block_size = 0;      ///< tokens per block (state groups: one state per block)
  std::int64_t page_bytes = 0;      ///< one layer's block
  std::int64_t window_tokens = 0;
  std::int64_t blocks_per_request = 0;  ///< at max_model_len
  int state_blocks = 0;                 ///< blocks a state group holds per request
};

struct kv_plan {
  std::vector<kv_group> groups;
  std::int64_t block_size = 0;       ///< attention block size after hybrid alignment
  std::int64_t bytes_per_block = 0;  ///< one block id across the widest group (what num_blocks divides)
  std::int64_t blocks_per_request = 0;  ///< at max_model_len, all groups
  std::int64_t max_model_len = 0;
  std::int64_t in_flight_tokens = 0;
  std::int64_t bytes_per_token = 0;     ///< attention kinds, all layers, unpadded (the KV per token)
  std::int64_t state_bytes_per_request = 0;  ///< state layers, all layers, unpadded, one copy
  std::int64_t state_padded_bytes = 0;  ///< one state layer's page after padding (0 without state layers)
  std::string layout;                   ///< "uniform", "uniform type", "hybrid", or "none"

  /// Block ids one request of `tokens` tokens holds across all groups.
  std::int64_t blocks_for(std::int64_t tokens) const;
  /// Bytes one request of `tokens` tokens holds: blocks_for x bytes_per_block.
  std::int64_t bytes_for(std::int64_t tokens) const { return blocks_for(tokens) * bytes_per_block; }
};

/// vLLM's grouping and page unification (vllm 0.33 v1/core/kv_cache_planning.py,
/// platforms/interface.py _align_hybrid_block_size) over `caches`.
kv_plan plan_kv_cache(const std::vector<layer_cache>& caches, const kv_cache_rules& rules, std::int64_t max_model_len,
                      std::int64_t max_num_batched_tokens);

}  // namespace gpucal::model
