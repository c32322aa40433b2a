// Paged KV cache bookkeeping (see block_allocator.hpp).
#include "gpucal/kernels/block_allocator.hpp"

#include <stdexcept>

namespace gpucal::kernels {

std::int64_t kv_cache_shape::blocks_for_budget(std::int64_t budget_bytes) const {
  if (budget_bytes <= 0) return 0;
  return budget_bytes / block_bytes();
}

block_allocator::block_allocator(std::int64_t num_blocks, std::int64_t block_size)
    : num_blocks_(num_blocks), block_size_(block_size) {
  if (num_blocks < 0 || num_blocks > INT32_MAX) throw std::invalid_argument("block_allocator: num_blocks out of range");
  if (block_size <= 0) throw std::invalid_argument("block_allocator: block_size must be positive");
  free_.reserve(static_cast<std::size_t>(num_blocks));
  for (std::int64_t b = num_blocks - 1; b >= 0; --b) free_.push_back(static_cast<std::int32_t>(b));  // hand out 0 first
}

void block_allocator::add_sequence(std::int64_t seq_id) {
  if (!seqs_.emplace(seq_id, sequence{}).second)
    throw std::invalid_argument("block_allocator: sequence " + std::to_string(seq_id) + " already exists");
}

const block_allocator::sequence& block_allocator::get(std::int64_t seq_id) const {
  const auto it = seqs_.find(seq_id);
  if (it == seqs_.end()) throw std::invalid_argument("block_allocator: no sequence " + std::to_string(seq_id));
  return it->second;
}

bool block_allocator::append(std::int64_t seq_id, std::int64_t tokens) {
  if (tokens < 0) throw std::invalid_argument("block_allocator: negative token count");
  get(seq_id);
  sequence& s = seqs_.at(seq_id);
  const std::int64_t needed = (s.tokens + tokens + block_size_ - 1) / block_size_ - static_cast<std::int64_t>(s.blocks.size());
  if (needed > free_blocks()) return false;
  for (std::int64_t i = 0; i < needed; ++i) {
    s.blocks.push_back(free_.back());
    free_.pop_back();
  }
  s.tokens += tokens;
  return true;
}

void block_allocator::free_sequence(std::int64_t seq_id) {
  get(seq_id);
  sequence& s = seqs_.at(seq_id);
  for (auto it = s.blocks.rbegin(); it != s.blocks.rend(); ++it) free_.push_back(*it);
  seqs_.erase(seq_id);
}

const std::vector<std::int32_t>& block_allocator::block_table(std::int64_t seq_id) const { return get(seq_id).blocks; }
std::int64_t block_allocator::length(std::int64_t seq_id) const { return get(seq_id).tokens; }

std::int64_t block_allocator::slot(std::int64_t seq_id, std::int64_t position) const {
  const sequence& s = get(seq_id);
  if (position < 0 || position >= s.tokens) throw std::out_of_range("block_allocator: position outside the sequence");
  return static_cast<std::int64_t>(s.blocks[static_cast<std::size_t>(position / block_size_)]) * block_size_ +
         position % block_size_;
}

}  // namespace gpucal::kernels
