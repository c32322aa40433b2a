// One engine step as flat arrays, ready to copy to the device: every token's
// id, position and KV slot; for causal attention through the paged decode
// kernel, every token's context length (position + 1) and a copy of its
// sequence's block table; and the rows whose logits are sampled.
#pragma once

#include <cstdint>
#include <vector>

namespace gpucal::engine {

struct step_plan;

struct forward_batch {
  std::int32_t max_blocks_per_seq = 0;     ///< row width of block_tables
  std::vector<std::int32_t> input_ids;     ///< [tokens]
  std::vector<std::int32_t> positions;     ///< [tokens]
  std::vector<std::int64_t> slot_mapping;  ///< [tokens] block x block_size + offset
  std::vector<std::int32_t> context_lens;  ///< [tokens] position + 1
  std::vector<std::int32_t> block_tables;  ///< [tokens][max_blocks_per_seq], unused entries 0
  std::vector<std::int32_t> sample_rows;   ///< token indices whose logits are sampled
  std::vector<std::int32_t> first_tokens;  ///< per sequence, the index of its first token (its rows share one table)
  std::vector<std::int32_t> query_lens;    ///< per sequence, its tokens in this batch (consecutive rows from first_tokens)
  std::vector<std::int32_t> seq_context_lens;  ///< per sequence, its context after this batch: last position + 1
  std::int64_t sequences() const { return static_cast<std::int64_t>(first_tokens.size()); }

  explicit forward_batch(std::int32_t max_blocks) : max_blocks_per_seq(max_blocks) {}

  std::int64_t tokens() const { return static_cast<std::int64_t>(input_ids.size()); }
  std::int32_t max_context_len() const;
  std::int32_t max_query_len() const;

  /// Appends `ids.size()` tokens of one sequence at positions start.., whose
  /// KV lives in `block_table` (blocks of `block_size` tokens, already
  /// covering every position written); samples the last token when `sample`.
  /// Throws std::invalid_argument when the table is too short or too wide.
  void append_sequence(const std::vector<std::int32_t>& ids, std::int64_t start, const std::vector<std::int32_t>& block_table,
                       std::int64_t block_size, bool sample);
};

/// The forward batch of a scheduler step (`block_size` as the scheduler's allocator).
forward_batch to_forward_batch(const step_plan& plan, std::int32_t max_blocks_per_seq, std::int64_t block_size);

}  // namespace gpucal::engine
