// Continuous-batching scheduler of the reference decoder engine, host only.
// Each step it picks the requests to run and how many tokens of each
// (vLLM V1's policy: running requests first, decode before new prompts,
// chunked prefill always on, recompute preemption when the KV pool is full)
// and flattens them into the arrays one GPU forward reads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "gpucal/model/step_policy.hpp"

namespace gpucal::kernels {
class block_allocator;
}

namespace gpucal::engine {

/// The engine arguments that bound a step (vLLM's names). Each must be in [1, 2^31 - 1]:
/// token counts and positions travel to the GPU as int32.
struct scheduler_limits {
  std::int64_t max_num_seqs;            ///< sequences in one step, and running at once
  std::int64_t max_num_batched_tokens;  ///< tokens (prefill chunks + decodes) in one step
  std::int64_t max_model_len;           ///< prompt_tokens + output_tokens of a request
};

/// A generation request: a synthetic prompt of `prompt_tokens` tokens, then `output_tokens` sampled ones.
struct request {
  std::int64_t id;             ///< unique over the scheduler's lifetime; also the block allocator's sequence id
  std::int64_t prompt_tokens;  ///< >= 1
  std::int64_t output_tokens;  ///< tokens to generate, >= 1
};

/// One request's share of a step: tokens [start_position, start_position + tokens) of its sequence.
struct scheduled_seq {
  std::int64_t request_id;
  std::int64_t start_position;  ///< tokens already in the KV cache before this step
  std::int64_t tokens;          ///< >= 1: a prefill chunk, or 1 for a decode
  bool samples;                 ///< the last token's logits give a new token (prompt done, or decoding)
  std::int32_t sample_row;      ///< flat index of that last token, or -1 when !samples
};

/// Everything one forward needs, flat and ready to copy to the device. The per-token
/// arrays (input_ids .. context_lens_per_token) all have total_tokens() entries,
/// grouped by sequence in `seqs` order.
struct step_plan {
  std::vector<scheduled_seq> seqs;                 ///< running requests (admission order), then new admissions
  std::vector<std::int32_t> input_ids;             ///< prompt ids for prefill positions, the last generated token for a decode
  std::vector<std::int32_t> positions;             ///< position of each token in its sequence
  std::vector<std::int64_t> slot_mapping;          ///< KV slot each token writes: block_allocator::slot(id, position)
  std::vector<std::int32_t> sample_rows;           ///< flat indices whose logits are sampled, in seqs order
  std::vector<std::int32_t> token_seq;             ///< for each token, its index into seqs
  std::vector<std::int32_t> context_lens_per_token;  ///< position + 1: the causal context of each token
  std::vector<std::vector<std::int32_t>> block_tables;  ///< per seq, its block table after this step's append
  std::int64_t prefill_tokens = 0;                 ///< tokens at prompt positions
  std::int64_t decode_tokens = 0;                  ///< tokens that feed back a generated token

  /// Tokens in the step: prefill_tokens + decode_tokens.
  std::int64_t total_tokens() const { return static_cast<std::int64_t>(input_ids.size()); }
};

/// Token `position` of request `request_id`'s synthetic prompt, in [0, vocab_size):
/// splitmix64(splitmix64(splitmix64(seed) ^ request_id) ^ position) mod vocab_size,
/// with the ids read as two's-complement uint64. Requires vocab_size >= 1.
std::int32_t synthetic_prompt_token(std::uint64_t seed, std::int64_t request_id, std::int64_t position,
                                    std::int32_t vocab_size);

/// Continuous-batching scheduler: requests wait in FCFS order, run once admitted and leave
/// when they have generated output_tokens tokens. Use: add() requests at any time, then
/// repeat schedule() -> forward -> complete() until idle(). The step policy is
/// gpucal::model::step_policy (vLLM V1's), the same the simulator runs; this class adds
/// the token ids, KV slots and block tables one forward reads.
///
/// Preemption is by recompute: the victim's blocks are freed, its computed tokens AND its
/// generated tokens are dropped, and it goes back to the front of the waiting queue to
/// start over from its prompt. (vLLM keeps the generated tokens and re-prefills them; we
/// regenerate them instead, which keeps a request's input a pure prompt and is just as
/// correct for a cost-measuring engine: generated() returns the final run's tokens.)
class scheduler {
public:
  /// `blocks` must outlive the scheduler; the scheduler owns the sequences it adds to it
  /// (sequence id = request id). Throws std::invalid_argument naming the bad limit or
  /// vocab_size (>= 1).
  scheduler(kernels::block_allocator& blocks, scheduler_limits limits, std::int32_t vocab_size, std::uint64_t seed);

  /// Queues a request at the back of the waiting queue. Throws std::invalid_argument naming the
  /// request id and the field for a duplicate id, prompt_tokens < 1, output_tokens < 1,
  /// prompt_tokens + output_tokens > max_model_len, or a request whose KV
  /// (prompt_tokens + output_tokens - 1 tokens) needs more blocks than the whole pool,
  /// which could never finish. Nothing changes on a throw.
  void add(const request& r);

  /// Builds the next step (model::step_policy::schedule: running requests first, 1 token
  /// per decode and min(remaining prompt, budget) per prefill, the latest admitted
  /// preempted when the KV append fails; then, unless that happened, waiting requests
  /// FCFS while running() < max_num_seqs and budget remains). The plan's KV blocks are
  /// reserved. An empty plan means nothing can run. Throws std::logic_error if the
  /// previous non-empty plan has not been passed to complete().
  step_plan schedule();

  /// Applies the forward's result: sampled[i] is the token chosen at plan.sample_rows[i].
  /// Advances each scheduled request by its chunk, appends sampled tokens and finishes
  /// requests that have all their output tokens (freeing their blocks). Throws
  /// std::invalid_argument (changing nothing) if sampled.size() != plan.sample_rows.size(),
  /// a token is outside [0, vocab_size), or the plan is not the last one scheduled.
  void complete(const step_plan& plan, const std::vector<std::int32_t>& sampled);

  /// No request waiting or running.
  bool idle() const { return policy_.idle(); }
  /// Requests admitted and not finished.
  std::size_t running() const { return policy_.running(); }
  /// Requests queued for admission, preempted ones included.
  std::size_t waiting() const { return policy_.waiting(); }
  /// Preemptions so far (a request preempted twice counts twice).
  std::int64_t preemptions() const { return policy_.preemptions(); }
  /// Tokens generated so far by a request (all of them once finished; empty while waiting).
  /// Throws std::out_of_range for an unknown id.
  const std::vector<std::int32_t>& generated(std::int64_t id) const;
  /// Ids of finished requests, in finish order.
  std::vector<std::int64_t> finished() const { return finished_; }
  const scheduler_limits& limits() const { return limits_; }

private:
  /// The block allocator as the policy's KV pool.
  class block_pool final : public model::kv_pool {
  public:
    explicit block_pool(kernels::block_allocator& blocks) : blocks_(blocks) {}
    void add_sequence(std::int64_t id) override;
    bool append(std::int64_t id, std::int64_t tokens) override;
    void free_sequence(std::int64_t id) override;
    std::string never_fits(std::int64_t tokens) const override;

  private:
    kernels::block_allocator& blocks_;
  };
  struct request_state {
    request req;
    std::vector<std::int32_t> generated;
  };

  std::int32_t input_token(const request_state& s, std::int64_t position) const;

  kernels::block_allocator& blocks_;
  scheduler_limits limits_;
  std::int32_t vocab_size_;
  std::uint64_t seed_;
  block_pool pool_;
  model::step_policy policy_;
  std::unordered_map<std::int64_t, request_state> states_;  // every request ever added
  std::vector<std::int64_t> finished_;                      // finish order
};

}  // namespace gpucal::engine
