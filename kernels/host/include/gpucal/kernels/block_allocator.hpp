// Paged KV cache bookkeeping on the host, as a paged serving engine keeps it:
// the pool's size arithmetic (blocks from a byte budget), and an allocator
// with a free list and per-sequence block tables that allocates a block when
// a sequence's tokens cross a block boundary and returns them when it ends.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace gpucal::kernels {

/// Shape of one layer group's KV cache: [2][num_blocks][block_size][kv_heads][head_dim].
struct kv_cache_shape {
  std::int64_t layers = 1;      ///< layers sharing the block table (one allocation each)
  std::int64_t kv_heads = 1;    ///< per GPU
  std::int64_t head_dim = 128;
  std::int64_t block_size = 16; ///< tokens per block
  int dtype_bytes = 2;          ///< 2 for bf16, 1 for fp8 e4m3

  /// Bytes one block holds across all layers: 2 (K and V) x layers x block_size x kv_heads x head_dim x dtype.
  std::int64_t block_bytes() const { return 2 * layers * block_size * kv_heads * head_dim * dtype_bytes; }
  /// Bytes per token across all layers (what the memory model calls kv_bytes_per_token).
  std::int64_t bytes_per_token() const { return block_bytes() / block_size; }
  /// Blocks a budget holds: floor(budget / block_bytes).
  std::int64_t blocks_for_budget(std::int64_t budget_bytes) const;
};

/// Hands out block ids from a fixed pool; never gives a block to two owners.
class block_allocator {
public:
  block_allocator(std::int64_t num_blocks, std::int64_t block_size);

  std::int64_t num_blocks() const { return num_blocks_; }
  std::int64_t free_blocks() const { return static_cast<std::int64_t>(free_.size()); }
  std::int64_t block_size() const { return block_size_; }

  /// Starts a sequence with no tokens; throws std::invalid_argument if the id is in use.
  void add_sequence(std::int64_t seq_id);
  /// Appends `tokens` tokens to a sequence, allocating the blocks they need.
  /// Returns false (and changes nothing) when the pool has too few free blocks.
  bool append(std::int64_t seq_id, std::int64_t tokens);
  /// Returns every block of a finished sequence to the free list.
  void free_sequence(std::int64_t seq_id);

  const std::vector<std::int32_t>& block_table(std::int64_t seq_id) const;
  std::int64_t length(std::int64_t seq_id) const;
  /// Slot (block x block_size + offset) of token `position` of a sequence.
  std::int64_t slot(std::int64_t seq_id, std::int64_t position) const;

private:
  struct sequence {
    std::vector<std::int32_t> blocks;
    std::int64_t tokens = 0;
  };
  const sequence& get(std::int64_t seq_id) const;

  std::int64_t num_blocks_;
  std::int64_t block_size_;
  std::vector<std::int32_t> free_;  // LIFO: recently freed blocks are reused first
  std::unordered_map<std::int64_t, sequence> seqs_;
};

}  // namespace gpucal::kernels
