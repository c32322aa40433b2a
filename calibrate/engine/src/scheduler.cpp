// Continuous-batching scheduler (see scheduler.hpp): the step policy, recompute
// preemption and the flattening of a step into per-token arrays.
#include "gpucal/engine/scheduler.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string_view>

#include "gpucal/kernels/block_allocator.hpp"

namespace gpucal::engine {

namespace {

// Steele, Lea & Flood's splitmix64 finalizer: a bijection on 64 bits whose outputs
// pass BigCrush, so chaining it over (seed, id, position) gives independent-looking
// token ids with no state to carry.
std::uint64_t splitmix64(std::uint64_t z) {
  z += 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

}  // namespace

std::int32_t synthetic_prompt_token(std::uint64_t seed, std::int64_t request_id, std::int64_t position,
                                    std::int32_t vocab_size) {
  if (vocab_size < 1) throw std::invalid_argument(fmt::format("vocab_size is {} (allowed: >= 1)", vocab_size));
  const std::uint64_t h =
      splitmix64(splitmix64(splitmix64(seed) ^ static_cast<std::uint64_t>(request_id)) ^ static_cast<std::uint64_t>(position));
  return static_cast<std::int32_t>(h % static_cast<std::uint64_t>(vocab_size));
}

void scheduler::block_pool::add_sequence(std::int64_t id) { blocks_.add_sequence(id); }
bool scheduler::block_pool::append(std::int64_t id, std::int64_t tokens) { return blocks_.append(id, tokens); }
void scheduler::block_pool::free_sequence(std::int64_t id) { blocks_.free_sequence(id); }
std::string scheduler::block_pool::never_fits(std::int64_t tokens) const {
  const std::int64_t need = (tokens + blocks_.block_size() - 1) / blocks_.block_size();
  if (need <= blocks_.num_blocks()) return "";
  return fmt::format("need {} blocks (allowed: <= the pool's {})", need, blocks_.num_blocks());
}

scheduler::scheduler(kernels::block_allocator& blocks, scheduler_limits limits, std::int32_t vocab_size,
                     std::uint64_t seed)
    : blocks_(blocks),
      limits_(limits),
      vocab_size_(vocab_size),
      seed_(seed),
      pool_(blocks),
      policy_(pool_, {limits.max_num_seqs, limits.max_num_batched_tokens, limits.max_model_len},
              model::preemption_mode::drop_generated) {
  if (vocab_size < 1) throw std::invalid_argument(fmt::format("scheduler: vocab_size is {} (allowed: >= 1)", vocab_size));
}

void scheduler::add(const request& r) {
  policy_.add(r.id, r.prompt_tokens, r.output_tokens);  // validates; throws before anything changes
  states_.emplace(r.id, request_state{r, {}});
}

const std::vector<std::int32_t>& scheduler::generated(std::int64_t id) const {
  const auto it = states_.find(id);
  if (it == states_.end()) throw std::out_of_range(fmt::format("scheduler: no request {}", id));
  return it->second.generated;
}

std::int32_t scheduler::input_token(const request_state& s, std::int64_t position) const {
  if (position < s.req.prompt_tokens) return synthetic_prompt_token(seed_, s.req.id, position, vocab_size_);
  return s.generated[static_cast<std::size_t>(position - s.req.prompt_tokens)];
}

step_plan scheduler::schedule() {
  const model::policy_step step = policy_.schedule();
  // Recompute preemption drops the victims' generated tokens (see scheduler.hpp).
  for (const std::int64_t id : step.preempted) states_.at(id).generated.clear();
  step_plan plan;
  for (const model::policy_chunk& c : step.chunks) {
    const request_state& s = states_.at(c.id);
    const auto seq_index = static_cast<std::int32_t>(plan.seqs.size());
    for (std::int64_t p = c.start; p < c.start + c.tokens; ++p) {
      plan.input_ids.push_back(input_token(s, p));
      plan.positions.push_back(static_cast<std::int32_t>(p));  // < max_model_len < 2^31
      plan.slot_mapping.push_back(blocks_.slot(c.id, p));
      plan.token_seq.push_back(seq_index);
      plan.context_lens_per_token.push_back(static_cast<std::int32_t>(p + 1));
    }
    const std::int32_t sample_row = c.samples ? static_cast<std::int32_t>(plan.input_ids.size() - 1) : -1;
    if (c.samples) plan.sample_rows.push_back(sample_row);
    plan.seqs.push_back(scheduled_seq{c.id, c.start, c.tokens, c.samples, sample_row});
    plan.block_tables.push_back(blocks_.block_table(c.id));
  }
  plan.prefill_tokens = step.prefill_tokens;
  plan.decode_tokens = step.decode_tokens;
  return plan;
}

void scheduler::complete(const step_plan& plan, const std::vector<std::int32_t>& sampled) {
  if (sampled.size() != plan.sample_rows.size())
    throw std::invalid_argument(fmt::format("scheduler::complete: {} sampled tokens for {} sample_rows", sampled.size(),
                                            plan.sample_rows.size()));
  // Validate everything before changing anything.
  for (const std::int32_t t : sampled)
    if (t < 0 || t >= vocab_size_)
      throw std::invalid_argument(fmt::format("scheduler::complete: sampled token {} (allowed: 0 to {})", t, vocab_size_ - 1));
  // The plan's chunks, which the policy checks against the step it has in flight.
  model::policy_step step;
  for (const scheduled_seq& q : plan.seqs) step.chunks.push_back({q.request_id, q.start_position, q.tokens, q.samples, false});
  const std::vector<std::int64_t> done = policy_.complete(step);
  std::size_t next_sample = 0;
  for (const scheduled_seq& q : plan.seqs)
    if (q.samples) states_.at(q.request_id).generated.push_back(sampled[next_sample++]);
  finished_.insert(finished_.end(), done.begin(), done.end());
}

}  // namespace gpucal::engine
