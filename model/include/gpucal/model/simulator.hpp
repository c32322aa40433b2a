// A discrete-event simulation of one replica under continuous batching:
// requests arrive (Poisson at a rate, or from a trace), the engine's step
// policy (step_policy: vLLM V1's) picks each step's work, the throughput
// model times the step, and the memory model's KV pool bounds what runs.
// Latencies are measured as the engines' serving benchmarks define them
// (vLLM `bench serve`): TTFT from arrival to the first token, TPOT per
// request (E2E - TTFT) / (output tokens - 1), ITL between consecutive
// tokens of a request, E2E from arrival to the last token.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gpucal/model/memory_model.hpp"
#include "gpucal/model/step_policy.hpp"
#include "gpucal/model/throughput_model.hpp"

namespace gpucal::model {

/// Token-length distribution: fixed (a), uniform integers in [a, b], or
/// lognormal with median a and log-space sigma b (rounded, at least 1).
struct length_dist {
  enum class kind { fixed, uniform, lognormal };
  kind shape = kind::fixed;
  double a = 0, b = 0;
  /// "fixed", "uniform" or "lognormal".
  std::string_view name() const;
};

/// Parses "N", "uniform:LO:HI" or "lognormal:MEDIAN:SIGMA"; input_error naming `flag` otherwise.
length_dist parse_length_dist(std::string_view text, const char* flag);

struct sim_request {
  double arrival_s = 0;
  std::int64_t prompt_tokens = 0;
  std::int64_t output_tokens = 0;
};

/// `count` requests: exponential inter-arrival gaps at `qps` (mean 1/qps),
/// lengths drawn from the distributions; one std::mt19937_64 seeded with `seed`.
std::vector<sim_request> poisson_requests(double qps, const length_dist& prompt, const length_dist& output,
                                          std::int64_t count, std::uint64_t seed);

/// A JSONL trace: one object per line with `arrival_s` (or `timestamp`, seconds),
/// `prompt_tokens` (or `input_length`) and `output_tokens` (or `output_length`).
/// Blank lines are skipped. input_error naming `path` and the line number for a
/// line that is not a JSON object, lacks a field, or holds a negative, non-finite
/// or non-integer value; arrivals need not be sorted (they are sorted here).
std::vector<sim_request> parse_trace(std::string_view text, const std::string& path);

struct latency_summary {
  double mean = 0, p50 = 0, p90 = 0, p99 = 0, max = 0;
  std::int64_t samples = 0;
  /// Quantiles at 0, 1, ..., 100 % for plotting (exact up to 100,000 samples,
  /// else of every (samples / 100,000)-th sample); the percentiles above are exact.
  std::vector<double> cdf;
};

/// One sampled point of the run.
struct sim_sample {
  double time_s = 0;
  double running = 0;           ///< requests admitted, not finished
  double waiting = 0;           ///< requests arrived, not admitted (preempted ones included)
  double batch_tokens = 0;      ///< tokens in the step starting here
  double kv_used_fraction = 0;  ///< of the KV pool's blocks
};

struct sim_result {
  std::int64_t requests = 0;      ///< finished
  std::int64_t preemptions = 0;
  std::int64_t steps = 0;
  double duration_s = 0;          ///< first arrival to last finish
  double output_tokens_per_s = 0;
  double requests_per_s = 0;
  latency_summary ttft_s, tpot_s, itl_s, e2e_s;
  double mean_batch_tokens = 0;   ///< per step
  double mean_running = 0;        ///< time-weighted
  double mean_in_system = 0;      ///< time-weighted running + waiting (Little's L)
  double mean_kv_used_fraction = 0;  ///< time-weighted
  double max_kv_used_fraction = 0;
  std::vector<sim_sample> timeline;  ///< at most 500 points, about evenly spaced in time (fewer on short runs)
};

struct sim_options {
  std::vector<sim_request> requests;  ///< any order; simulate sorts its copy by arrival (move them in)
  preemption_mode preemption = preemption_mode::keep_generated;  ///< vLLM's
};

/// Runs the simulation. A step's time: the decode of its decode tokens
/// (perf.decode_step at their batch and mean context) plus, when it carries
/// prompt chunks, their prefill (perf.prefill of their tokens, as equal
/// chunks) less the step overhead already counted; a step of prompt chunks
/// alone is their prefill. Step times are memoized. The KV pool is
/// mem.num_blocks blocks, each request holding mem.kv.blocks_for(its tokens).
/// input_error for a request longer than mem.settings.max_model_len or one
/// the whole pool cannot hold.
sim_result simulate(const throughput_model& perf, const memory_estimate& mem, sim_options opt);

/// B prompts arriving at once (an offline batch, vLLM's benchmark_latency):
/// the rule, and the simulation of the same batch.
struct static_batch {
  std::int64_t batch = 0, prompt_tokens = 0, output_tokens = 0;
  std::int64_t prefill_steps = 0;  ///< ceil(B x P / max_num_batched_tokens)
  double prefill_s = 0;            ///< every prompt, in steps of max_num_batched_tokens tokens
  double decode_s = 0;             ///< O - 1 steps at batch B, context P + 1 .. P + O - 1
  double e2e_s = 0;                ///< prefill_s + decode_s
  double output_tokens_per_s = 0;  ///< B x O / e2e_s
  double simulated_e2e_s = 0;      ///< the same batch through simulate() (waves and preemption included); NaN above 2 x 10^7 output tokens
  std::int64_t simulated_preemptions = 0;
};

/// The rule: the prompts' B x P tokens fill steps of max_num_batched_tokens
/// (whole prompts per step when P fits, else chunks of one prompt), each timed
/// as perf.prefill; then O - 1 decode steps at batch B over contexts P + 1 to
/// P + O - 1 (beyond 4096 decode steps, timed every O/4096 steps). It assumes the batch runs at once (B <= max_num_seqs, its KV in
/// the pool); the simulated figure shows what waves or preemption add.
static_batch static_batch_estimate(const throughput_model& perf, const memory_estimate& mem, std::int64_t batch,
                                   std::int64_t prompt_tokens, std::int64_t output_tokens);

}  // namespace gpucal::model
