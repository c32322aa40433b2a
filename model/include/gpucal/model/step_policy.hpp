// vLLM V1's continuous-batching step policy, on counts only: which requests
// run in the next step and how many tokens of each. Running requests first
// (decode before new prompts), chunked prefill within max_num_batched_tokens,
// at most max_num_seqs running, recompute preemption of the latest admitted
// request when the KV pool is full. One implementation serves the reference
// engine (gpucal::engine::scheduler adds token ids and device arrays around
// it) and the simulator (gpucal simulate).
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>
#include <vector>

namespace gpucal::model {

/// Where a step's KV goes: a real block allocator, or a counting pool.
class kv_pool {
public:
  virtual ~kv_pool() = default;
  virtual void add_sequence(std::int64_t id) = 0;
  /// Reserves room for `tokens` more tokens of `id`; false (changing nothing) when the pool is full.
  virtual bool append(std::int64_t id, std::int64_t tokens) = 0;
  virtual void free_sequence(std::int64_t id) = 0;
  /// Why a request of `tokens` KV tokens can never fit, even in the whole
  /// empty pool (e.g. "need 9 blocks (allowed: <= the pool's 8)"); "" when it can.
  virtual std::string never_fits(std::int64_t tokens) const = 0;
};

/// The engine arguments that bound a step (vLLM's names), each in [1, 2^31 - 1].
struct policy_limits {
  std::int64_t max_num_seqs;
  std::int64_t max_num_batched_tokens;
  std::int64_t max_model_len;
};

/// What a preempted request keeps. vLLM keeps the tokens it has generated and
/// prefills prompt + generated again; the reference engine drops them and
/// generates them again, which keeps its inputs pure prompts.
enum class preemption_mode { keep_generated, drop_generated };

/// One request's share of a step: tokens [start, start + tokens) of its sequence.
struct policy_chunk {
  std::int64_t id;
  std::int64_t start;   ///< tokens already in the KV cache before this step
  std::int64_t tokens;  ///< >= 1
  bool samples;         ///< reaches the last known token: a new token is sampled
  bool decode;          ///< one token feeding back a generated one
};

struct policy_step {
  std::vector<policy_chunk> chunks;   ///< running requests (admission order), then new admissions
  std::vector<std::int64_t> preempted;  ///< requests preempted while this step was built, in order
  std::int64_t prefill_tokens = 0;
  std::int64_t decode_tokens = 0;
  bool empty() const { return chunks.empty(); }
};

class step_policy {
public:
  /// Throws std::invalid_argument naming a limit outside [1, 2^31 - 1]. `pool` must outlive the policy.
  step_policy(kv_pool& pool, policy_limits limits, preemption_mode mode);

  /// Queues a request (FCFS). Throws std::invalid_argument naming the request and
  /// field for a duplicate id, prompt or output below 1, prompt + output beyond
  /// max_model_len, or a KV (prompt + output - 1 tokens) the whole pool cannot hold.
  void add(std::int64_t id, std::int64_t prompt_tokens, std::int64_t output_tokens);

  /// The next step (see the file comment); its KV is reserved. Empty: nothing can run.
  /// Throws std::logic_error while a non-empty step awaits complete().
  policy_step schedule();

  /// Applies a step: each chunk's tokens are computed, each sampling chunk
  /// generates one token. Returns the requests that finished, in order; their
  /// KV is freed and the policy forgets them. Throws std::invalid_argument
  /// (changing nothing) for a step that is not the last one scheduled.
  std::vector<std::int64_t> complete(const policy_step& step);

  bool idle() const { return waiting_.empty() && running_.empty(); }
  std::size_t running() const { return running_.size(); }
  std::size_t waiting() const { return waiting_.size(); }
  std::int64_t preemptions() const { return preemptions_; }
  /// A request the policy holds: tokens in its KV, and tokens generated in its current run.
  bool holds(std::int64_t id) const { return states_.count(id) != 0; }
  std::int64_t computed_tokens(std::int64_t id) const { return states_.at(id).computed; }
  std::int64_t generated_tokens(std::int64_t id) const { return states_.at(id).generated; }
  std::int64_t prompt_tokens(std::int64_t id) const { return states_.at(id).prompt; }
  const policy_limits& limits() const { return limits_; }

private:
  struct state {
    std::int64_t prompt = 0, output = 0, computed = 0, generated = 0;
    std::int64_t known() const { return prompt + generated; }
  };
  void preempt(std::int64_t id, policy_step& step);
  void emit(policy_step& step, std::int64_t id, const state& s, std::int64_t tokens) const;

  kv_pool& pool_;
  policy_limits limits_;
  preemption_mode mode_;
  std::unordered_map<std::int64_t, state> states_;
  std::deque<std::int64_t> waiting_;
  std::vector<std::int64_t> running_;
  std::int64_t preemptions_ = 0;
  bool in_flight_ = false;
  std::vector<policy_chunk> last_;  // the chunks of the step in flight
};

}  // namespace gpucal::model
