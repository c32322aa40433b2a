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

constexpr std::int64_t max_int32 = std::numeric_limits<std::int32_t>::max();

// Steele, Lea & Flood's splitmix64 finalizer: a bijection on 64 bits whose outputs
// pass BigCrush, so chaining it over (seed, id, position) gives independent-looking
// token ids with no state to carry.
std::uint64_t splitmix64(std::uint64_t z) {
  z += 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

void check_limit(std::string_view field, std::int64_t value) {
  if (value < 1 || value > max_int32)
    throw std::invalid_argument(
        fmt::format("scheduler_limits.{} is {} (allowed: 1 to {})", field, value, max_int32));
}

}  // namespace

std::int32_t synthetic_prompt_token(std::uint64_t seed, std::int64_t request_id, std::int64_t position,
                                    std::int32_t vocab_size) {
  if (vocab_size < 1) throw std::invalid_argument(fmt::format("vocab_size is {} (allowed: >= 1)", vocab_size));
  const std::uint64_t h =
      splitmix64(splitmix64(splitmix64(seed) ^ static_cast<std::uint64_t>(request_id)) ^ static_cast<std::uint64_t>(position));
  return static_cast<std::int32_t>(h % static_cast<std::uint64_t>(vocab_size));
}

scheduler::scheduler(kernels::block_allocator& blocks, scheduler_limits limits, std::int32_t vocab_size,
                     std::uint64_t seed)
    : blocks_(blocks), limits_(limits), vocab_size_(vocab_size), seed_(seed) {
  check_limit("max_num_seqs", limits.max_num_seqs);
  check_limit("max_num_batched_tokens", limits.max_num_batched_tokens);
  check_limit("max_model_len", limits.max_model_len);
  if (vocab_size < 1) throw std::invalid_argument(fmt::format("scheduler: vocab_size is {} (allowed: >= 1)", vocab_size));
}

void scheduler::add(const request& r) {
  const auto fail = [&](std::string_view what) {
    throw std::invalid_argument(fmt::format("scheduler: request {}: {}", r.id, what));
  };
  if (states_.count(r.id) != 0) fail("id is already in use");
  if (r.prompt_tokens < 1) fail(fmt::format("prompt_tokens is {} (allowed: >= 1)", r.prompt_tokens));
  if (r.output_tokens < 1) fail(fmt::format("output_tokens is {} (allowed: >= 1)", r.output_tokens));
  // Both are >= 1 here and max_model_len < 2^31, so the subtraction cannot overflow.
  if (r.prompt_tokens > limits_.max_model_len - r.output_tokens)
    fail(fmt::format("prompt_tokens + output_tokens is {} + {} (allowed: <= max_model_len {})", r.prompt_tokens,
                     r.output_tokens, limits_.max_model_len));
  // The last sampled token is never fed back, so the KV peaks at prompt + output - 1 tokens.
  // A request needing more blocks than the pool would preempt itself forever.
  const std::int64_t kv_tokens = r.prompt_tokens + r.output_tokens - 1;
  const std::int64_t kv_blocks = (kv_tokens + blocks_.block_size() - 1) / blocks_.block_size();
  if (kv_blocks > blocks_.num_blocks())
    fail(fmt::format("prompt_tokens + output_tokens - 1 = {} KV tokens need {} blocks (allowed: <= the pool's {})",
                     kv_tokens, kv_blocks, blocks_.num_blocks()));
  states_.emplace(r.id, request_state{r, 0, {}});
  waiting_.push_back(r.id);
}

scheduler::request_state& scheduler::state(std::int64_t id) { return states_.at(id); }

const std::vector<std::int32_t>& scheduler::generated(std::int64_t id) const {
  const auto it = states_.find(id);
  if (it == states_.end()) throw std::out_of_range(fmt::format("scheduler: no request {}", id));
  return it->second.generated;
}

std::int32_t scheduler::input_token(const request_state& s, std::int64_t position) const {
  if (position < s.req.prompt_tokens) return synthetic_prompt_token(seed_, s.req.id, position, vocab_size_);
  return s.generated[static_cast<std::size_t>(position - s.req.prompt_tokens)];
}

// Appends tokens [computed, computed + tokens) of `s` to the plan. Its KV must already be reserved.
void scheduler::emit(step_plan& plan, const request_state& s, std::int64_t tokens) const {
  const auto seq_index = static_cast<std::int32_t>(plan.seqs.size());
  const std::int64_t start = s.computed_tokens;
  for (std::int64_t p = start; p < start + tokens; ++p) {
    plan.input_ids.push_back(input_token(s, p));
    plan.positions.push_back(static_cast<std::int32_t>(p));  // < max_model_len < 2^31
    plan.slot_mapping.push_back(blocks_.slot(s.req.id, p));
    plan.token_seq.push_back(seq_index);
    plan.context_lens_per_token.push_back(static_cast<std::int32_t>(p + 1));
  }
  // The chunk reaching the last known token (end of the prompt, or the fed-back token of
  // a decode) yields the next token; an earlier prefill chunk's logits are discarded.
  const bool samples = start + tokens == s.known_tokens();
  const std::int32_t sample_row = samples ? static_cast<std::int32_t>(plan.input_ids.size() - 1) : -1;
  if (samples) plan.sample_rows.push_back(sample_row);
  // Preemption drops generated tokens, so a chunk is either all prompt or one decode token.
  (start >= s.req.prompt_tokens ? plan.decode_tokens : plan.prefill_tokens) += tokens;
  plan.seqs.push_back(scheduled_seq{s.req.id, start, tokens, samples, sample_row});
  plan.block_tables.push_back(blocks_.block_table(s.req.id));
}

void scheduler::preempt(std::int64_t id) {
  blocks_.free_sequence(id);
  request_state& s = state(id);
  s.computed_tokens = 0;
  s.generated.clear();  // recompute preemption: regenerated from the prompt (see scheduler.hpp)
  running_.erase(std::find(running_.begin(), running_.end(), id));
  waiting_.push_front(id);
  ++preemptions_;
}

step_plan scheduler::schedule() {
  if (in_flight_) throw std::logic_error("scheduler: schedule() called before complete() of the previous step");
  step_plan plan;
  std::int64_t budget = limits_.max_num_batched_tokens;
  bool preempted = false;

  // 1. Running requests, oldest admission first. A victim is always the last of running_,
  //    never a request already placed in this plan, so the plan's slots stay valid.
  for (std::size_t i = 0; i < running_.size() && budget > 0;) {
    const std::int64_t id = running_[i];
    request_state& s = state(id);
    const std::int64_t tokens = std::min(s.known_tokens() - s.computed_tokens, budget);
    bool reserved = blocks_.append(id, tokens);
    while (!reserved) {
      const std::int64_t victim = running_.back();
      preempt(victim);
      preempted = true;
      if (victim == id) break;
      reserved = blocks_.append(id, tokens);
    }
    if (!reserved) break;  // `id` preempted itself: it was the last running request
    emit(plan, s, tokens);
    budget -= tokens;
    ++i;
  }

  // 2. Waiting requests, FCFS, each with a first prefill chunk.
  while (!preempted && !waiting_.empty() && budget > 0 &&
         static_cast<std::int64_t>(running_.size()) < limits_.max_num_seqs) {
    const std::int64_t id = waiting_.front();
    const request_state& s = state(id);
    const std::int64_t tokens = std::min(s.known_tokens(), budget);
    blocks_.add_sequence(id);
    if (!blocks_.append(id, tokens)) {
      blocks_.free_sequence(id);  // holds no block: append changes nothing on failure
      break;
    }
    waiting_.pop_front();
    running_.push_back(id);
    emit(plan, s, tokens);
    budget -= tokens;
  }

  in_flight_ = !plan.seqs.empty();
  return plan;
}

void scheduler::complete(const step_plan& plan, const std::vector<std::int32_t>& sampled) {
  if (sampled.size() != plan.sample_rows.size())
    throw std::invalid_argument(fmt::format("scheduler::complete: {} sampled tokens for {} sample_rows", sampled.size(),
                                            plan.sample_rows.size()));
  if (!plan.seqs.empty() && !in_flight_)
    throw std::invalid_argument("scheduler::complete: no step in flight (plan completed twice?)");
  // Validate everything before changing anything.
  for (const std::int32_t t : sampled)
    if (t < 0 || t >= vocab_size_)
      throw std::invalid_argument(fmt::format("scheduler::complete: sampled token {} (allowed: 0 to {})", t, vocab_size_ - 1));
  for (const scheduled_seq& q : plan.seqs) {
    const auto it = states_.find(q.request_id);
    if (it == states_.end() || std::find(running_.begin(), running_.end(), q.request_id) == running_.end() ||
        it->second.computed_tokens != q.start_position)
      throw std::invalid_argument(
          fmt::format("scheduler::complete: request {} at position {} is not the last plan's", q.request_id, q.start_position));
  }

  std::size_t next_sample = 0;
  for (const scheduled_seq& q : plan.seqs) {
    request_state& s = state(q.request_id);
    s.computed_tokens += q.tokens;
    if (!q.samples) continue;
    s.generated.push_back(sampled[next_sample++]);
    if (static_cast<std::int64_t>(s.generated.size()) == s.req.output_tokens) {
      blocks_.free_sequence(q.request_id);
      running_.erase(std::find(running_.begin(), running_.end(), q.request_id));
      finished_.push_back(q.request_id);
    }
  }
  in_flight_ = false;
}

}  // namespace gpucal::engine
