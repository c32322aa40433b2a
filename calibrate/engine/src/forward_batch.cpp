// Flattening of one step's sequences (see forward_batch.hpp).
#include "gpucal/engine/forward_batch.hpp"

#include "gpucal/engine/scheduler.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

namespace gpucal::engine {

std::int32_t forward_batch::max_context_len() const {
  return context_lens.empty() ? 0 : *std::max_element(context_lens.begin(), context_lens.end());
}

std::int32_t forward_batch::max_query_len() const {
  return query_lens.empty() ? 0 : *std::max_element(query_lens.begin(), query_lens.end());
}

void forward_batch::append_sequence(const std::vector<std::int32_t>& ids, std::int64_t start,
                                    const std::vector<std::int32_t>& block_table, std::int64_t block_size, bool sample) {
  if (ids.empty()) throw std::invalid_argument("forward_batch: a sequence needs at least one token");
  if (start < 0) throw std::invalid_argument(fmt::format("forward_batch: start position {} is negative", start));
  const std::int64_t end = start + static_cast<std::int64_t>(ids.size());
  const std::int64_t blocks = (end + block_size - 1) / block_size;
  if (static_cast<std::int64_t>(block_table.size()) < blocks)
    throw std::invalid_argument(fmt::format("forward_batch: {} tokens need {} blocks, the table has {}", end, blocks,
                                            block_table.size()));
  if (static_cast<std::int64_t>(block_table.size()) > max_blocks_per_seq)
    throw std::invalid_argument(fmt::format("forward_batch: a table of {} blocks exceeds max_blocks_per_seq {}",
                                            block_table.size(), max_blocks_per_seq));
  first_tokens.push_back(static_cast<std::int32_t>(input_ids.size()));
  query_lens.push_back(static_cast<std::int32_t>(ids.size()));
  seq_context_lens.push_back(static_cast<std::int32_t>(end));
  for (std::int64_t p = start; p < end; ++p) {
    input_ids.push_back(ids[static_cast<std::size_t>(p - start)]);
    positions.push_back(static_cast<std::int32_t>(p));
    slot_mapping.push_back(static_cast<std::int64_t>(block_table[static_cast<std::size_t>(p / block_size)]) * block_size +
                           p % block_size);
    context_lens.push_back(static_cast<std::int32_t>(p + 1));
    const std::size_t row = block_tables.size();
    block_tables.resize(row + static_cast<std::size_t>(max_blocks_per_seq), 0);
    std::copy(block_table.begin(), block_table.end(), block_tables.begin() + static_cast<std::ptrdiff_t>(row));
  }
  if (sample) sample_rows.push_back(static_cast<std::int32_t>(input_ids.size() - 1));
}

forward_batch to_forward_batch(const step_plan& plan, std::int32_t max_blocks_per_seq, std::int64_t block_size) {
  forward_batch b(max_blocks_per_seq);
  std::size_t offset = 0;
  for (std::size_t i = 0; i < plan.seqs.size(); ++i) {
    const scheduled_seq& s = plan.seqs[i];
    const auto n = static_cast<std::size_t>(s.tokens);
    const std::vector<std::int32_t> ids(plan.input_ids.begin() + static_cast<std::ptrdiff_t>(offset),
                                        plan.input_ids.begin() + static_cast<std::ptrdiff_t>(offset + n));
    b.append_sequence(ids, s.start_position, plan.block_tables[i], block_size, s.samples);
    offset += n;
  }
  return b;
}

}  // namespace gpucal::engine
