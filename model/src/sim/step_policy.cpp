// vLLM V1's step policy on counts (see step_policy.hpp).
#include "gpucal/model/step_policy.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string_view>

namespace gpucal::model {

namespace {

constexpr std::int64_t max_int32 = std::numeric_limits<std::int32_t>::max();

void check_limit(std::string_view field, std::int64_t value) {
  if (value < 1 || value > max_int32)
    throw std::invalid_argument(fmt::format("scheduler_limits.{} is {} (allowed: 1 to {})", field, value, max_int32));
}

}  // namespace

step_policy::step_policy(kv_pool& pool, policy_limits limits, preemption_mode mode)
    : pool_(pool), limits_(limits), mode_(mode) {
  check_limit("max_num_seqs", limits.max_num_seqs);
  check_limit("max_num_batched_tokens", limits.max_num_batched_tokens);
  check_limit("max_model_len", limits.max_model_len);
}

void step_policy::add(std::int64_t id, std::int64_t prompt_tokens, std::int64_t output_tokens) {
  const auto fail = [&](std::string_view what) {
    throw std::invalid_argument(fmt::format("scheduler: request {}: {}", id, what));
  };
  if (states_.count(id) != 0) fail("id is already in use");
  if (prompt_tokens < 1) fail(fmt::format("prompt_tokens is {} (allowed: >= 1)", prompt_tokens));
  if (output_tokens < 1) fail(fmt::format("output_tokens is {} (allowed: >= 1)", output_tokens));
  // Both are >= 1 here and max_model_len < 2^31, so the subtraction cannot overflow.
  if (prompt_tokens > limits_.max_model_len - output_tokens)
    fail(fmt::format("prompt_tokens + output_tokens is {} + {} (allowed: <= max_model_len {})", prompt_tokens,
                     output_tokens, limits_.max_model_len));
  // The last sampled token is never fed back, so the KV peaks at prompt + output - 1 tokens.
  // A request the whole pool cannot hold would preempt itself forever.
  const std::int64_t kv_tokens = prompt_tokens + output_tokens - 1;
  if (const std::string why = pool_.never_fits(kv_tokens); !why.empty())
    fail(fmt::format("prompt_tokens + output_tokens - 1 = {} KV tokens {}", kv_tokens, why));
  states_.emplace(id, state{prompt_tokens, output_tokens, 0, 0});
  waiting_.push_back(id);
}

void step_policy::emit(policy_step& step, std::int64_t id, const state& s, std::int64_t tokens) const {
  // The chunk reaching the last known token (end of the prompt, or the fed-back
  // token of a decode) yields the next token; an earlier chunk's logits are discarded.
  const bool samples = s.computed + tokens == s.known();
  const bool decode = tokens == 1 && samples && s.generated > 0 && s.computed == s.known() - 1;
  (decode ? step.decode_tokens : step.prefill_tokens) += tokens;
  step.chunks.push_back(policy_chunk{id, s.computed, tokens, samples, decode});
}

void step_policy::preempt(std::int64_t id, policy_step& step) {
  pool_.free_sequence(id);
  state& s = states_.at(id);
  s.computed = 0;
  if (mode_ == preemption_mode::drop_generated) s.generated = 0;
  running_.erase(std::find(running_.begin(), running_.end(), id));
  waiting_.push_front(id);
  step.preempted.push_back(id);
  ++preemptions_;
}

policy_step step_policy::schedule() {
  if (in_flight_) throw std::logic_error("scheduler: schedule() called before complete() of the previous step");
  policy_step step;
  std::int64_t budget = limits_.max_num_batched_tokens;
  bool preempted = false;

  // 1. Running requests, oldest admission first. A victim is always the last of running_,
  //    never a request already placed in this step.
  for (std::size_t i = 0; i < running_.size() && budget > 0;) {
    const std::int64_t id = running_[i];
    const state& s = states_.at(id);
    const std::int64_t tokens = std::min(s.known() - s.computed, budget);
    bool reserved = pool_.append(id, tokens);
    while (!reserved) {
      const std::int64_t victim = running_.back();
      preempt(victim, step);
      preempted = true;
      if (victim == id) break;
      reserved = pool_.append(id, tokens);
    }
    if (!reserved) break;  // `id` preempted itself: it was the last running request
    emit(step, id, s, tokens);
    budget -= tokens;
    ++i;
  }

  // 2. Waiting requests, FCFS, each with a first prefill chunk; none in a step
  //    that preempted (admitting now would only take back the blocks just freed).
  while (!preempted && !waiting_.empty() && budget > 0 && static_cast<std::int64_t>(running_.size()) < limits_.max_num_seqs) {
    const std::int64_t id = waiting_.front();
    const state& s = states_.at(id);
    const std::int64_t tokens = std::min(s.known(), budget);
    pool_.add_sequence(id);
    if (!pool_.append(id, tokens)) {
      pool_.free_sequence(id);
      break;
    }
    waiting_.pop_front();
    running_.push_back(id);
    emit(step, id, s, tokens);
    budget -= tokens;
  }

  in_flight_ = !step.chunks.empty();
  last_ = step.chunks;
  return step;
}

std::vector<std::int64_t> step_policy::complete(const policy_step& step) {
  if (!step.chunks.empty() && !in_flight_)
    throw std::invalid_argument("scheduler::complete: no step in flight (plan completed twice?)");
  if (in_flight_ && step.chunks.size() != last_.size())
    throw std::invalid_argument(fmt::format("scheduler::complete: {} chunks for the {} of the step in flight", step.chunks.size(),
                                            last_.size()));
  // The step must be the one schedule() returned last: the same chunks in the same order
  // (a step with chunks is in flight here, with as many chunks as last_, checked above).
  for (std::size_t i = 0; i < step.chunks.size(); ++i) {
    const policy_chunk& c = step.chunks[i];
    if (last_[i].id != c.id || last_[i].start != c.start || last_[i].tokens != c.tokens || last_[i].samples != c.samples)
      throw std::invalid_argument(fmt::format("scheduler::complete: request {} at position {} is not the last plan's", c.id, c.start));
  }
  std::vector<std::int64_t> finished;
  for (const policy_chunk& c : step.chunks) {
    state& s = states_.at(c.id);
    s.computed += c.tokens;
    if (!c.samples) continue;
    ++s.generated;
    if (s.generated == s.output) {
      pool_.free_sequence(c.id);
      running_.erase(std::find(running_.begin(), running_.end(), c.id));
      states_.erase(c.id);
      finished.push_back(c.id);
    }
  }
  in_flight_ = false;
  last_.clear();
  return finished;
}

}  // namespace gpucal::model
