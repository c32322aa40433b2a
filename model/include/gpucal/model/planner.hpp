// The deployment planner: searches GPU SKU x GPUs per replica (tp) x weight
// quantization x KV-cache dtype x replicas for the fewest GPUs that carry a
// workload within its latency targets. Each candidate's steady state is the
// fixed point of Little's law with a step time that grows with the batch.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "gpucal/model/coefficients.hpp"
#include "gpucal/model/engine_profile.hpp"
#include "gpucal/model/memory_model.hpp"
#include "gpucal/model/model_spec.hpp"
#include "gpucal/model/simulator.hpp"
#include "gpucal/model/throughput_model.hpp"

namespace gpucal::model {

struct workload {
  double qps = 0;          ///< requests per second, all replicas together
  double prompt_len = 0;   ///< tokens per prompt
  double output_len = 0;   ///< tokens generated per request
  double ttft_p99_s = 0;   ///< target
  double tpot_p99_s = 0;   ///< target, per request: (E2E - TTFT) / (output - 1)
  double itl_p99_s = 0;    ///< target between consecutive tokens; 0 = none
};

/// Steady state of one replica at `arrival_qps`.
struct replica_state {
  double arrival_qps = 0;
  double prefill_s = 0;        ///< one prompt's prefill step
  double prefill_share = 0;    ///< rho: share of GPU time spent in prefill
  double concurrency = 0;      ///< mean requests in the system (Little's law fixed point)
  double batch_p99 = 0;        ///< p99 of the decode batch: C + 2.326 sqrt(C)
  double decode_step_s = 0;    ///< decode step at the mean batch
  double ttft_mean_s = 0;
  double ttft_p99_s = 0;
  double tpot_mean_s = 0;
  double tpot_p99_s = 0;       ///< per request, over requests
  double itl_mean_s = 0;       ///< between consecutive tokens (= tpot_mean_s)
  double itl_p99_s = 0;        ///< over tokens
  double prefill_chunk_s = 0;  ///< one chunk of min(P, max_num_batched_tokens) tokens, step overhead excluded
  double chunks_per_request_p99 = 0;  ///< prompt chunks a request's decode period sees at p99
  double output_tokens_per_s = 0;
  std::int64_t kv_needed_bytes = 0;  ///< batch_p99 requests of prompt + output tokens, in whole blocks
  std::int64_t kv_pool_bytes = 0;
  bool converged = false;
  std::string failure;       ///< "", or the first reason this state misses the workload
  std::string failure_kind;  ///< "throughput", "memory", "ttft", "tpot", "itl"
  int failure_stage = 0;     ///< 3 throughput, 4 KV capacity, 5 TTFT, 6 TPOT, 7 ITL (see candidate_failure)
};

/// Solves one replica's steady state. The rules (documented in the README),
/// for the metrics as vLLM's `bench serve` defines them:
/// - prefill share rho = arrival x prefill(P); rho >= 1 cannot keep up;
/// - TPOT mean = ITL mean = decode_step(C) / (1 - rho); C = arrival x (TTFT + O x TPOT) solved by bisection;
/// - a step carrying k prompt chunks lasts d + k x chunk (d = decode_step(C), chunk =
///   prefill of min(P, max_num_batched_tokens) tokens less the step overhead); the chunks
///   at a step's start arrived during the previous step, so K' ~ Poisson(lambda_u (d + K chunk)),
///   lambda_u = arrival x chunks per prompt: a branching process with immigration, offspring
///   mean a = lambda_u x chunk, stationary mean lambda_u d / (1 - a) and variance mean / (1 - a^2),
///   its counts taken as Poisson or negative binomial;
/// - ITL p99 (per token) = decode step at the p99 batch (C + 2.33 sqrt C) + K99 x chunk;
/// - TPOT p99 (per request, (E2E - TTFT) / (O - 1)) = decode step at a burst batch
///   (C + 2.33 sqrt(2C/3)) + N99 x chunk / (O - 1), N the chunks of O - 1 steps (mean
///   (O - 1) E[K], variance (O - 1) Var[K] (1 + a) / (1 - a));
/// - TTFT p99: the arrival falls in a step of length T_k (length-biased), waits out the
///   rest of it (uniform), then runs its chunks, each step with d, its chunk and those of
///   the J ~ Poisson(arrival x T_k) prompts that came in the same step; the 99th percentile
///   of that mixture.
/// No p99 is below its mean.
replica_state solve_replica(const throughput_model& perf, const memory_estimate& mem, const workload& w,
                            double arrival_qps);

struct plan_options {
  std::vector<std::string> gpus;  ///< empty: the whole catalog
  int max_gpus = 64;
  std::vector<std::string> quantizations = {"none", "fp8", "int8", "int4"};
  std::vector<std::string> kv_cache_dtypes = {"auto", "fp8"};
  std::map<std::string, double> price_per_gpu_hour;  ///< by GPU slug (--gpu-prices); over the catalog's defaults
  bool default_prices = true;                         ///< fill the others from model/catalog/prices.json
  std::string engine = "vllm";
  /// Chunked-prefill budget per step; unset = the engine's default. Smaller
  /// chunks lower TPOT p99 at some prefill efficiency.
  std::optional<std::int64_t> max_num_batched_tokens;
  /// Coefficients per GPU slug (each GPU's calibration); GPUs not listed use
  /// the coefficients passed to plan_deployment.
  std::map<std::string, coefficients> coefficients_by_gpu;
  bool aggregated = true;      ///< plan replicas that prefill and decode (--mode agg, both)
  bool disaggregated = false;  ///< plan prefill and decode pools (--mode disagg, both)
  /// Per-GPU bandwidth (GB/s) the KV moves at between the pools; unset: the
  /// GPU's NVLink (PCIe without), i.e. both pools in one NVLink domain.
  std::optional<double> kv_link_gbps;
};

/// The two pools of a disaggregated plan.
struct disagg_plan {
  int prefill_tp = 1, decode_tp = 1;
  std::string prefill_quantization, decode_quantization;
  int prefill_replicas = 1, decode_replicas = 1;
  double prefill_s = 0;         ///< one prompt on a prefill replica
  double prefill_share = 0;     ///< rho of a prefill replica: arrival x prefill_s
  double prefill_wait_p99_s = 0;  ///< M/D/1 queue of prompts
  double kv_bytes = 0;          ///< one prompt's KV, all layers
  double kv_link_gbps = 0;      ///< per GPU
  double kv_transfer_s = 0;     ///< kv_bytes / (min(prefill tp, decode tp) x link)
  replica_state decode;         ///< a decode replica (no prompt chunks)
  resolved_settings prefill_settings, decode_settings;
};

/// A plan re-checked by simulation: one replica at its share of the load.
struct plan_verification {
  sim_result sim;
  std::int64_t requests = 0;  ///< simulated, Poisson arrivals at qps / replicas, fixed lengths
  std::vector<std::string> misses;  ///< "TTFT", "TPOT", "ITL": simulated p99 above the target
};

struct plan {
  std::string mode = "agg";  ///< "agg": replicas that prefill and decode; "disagg": prefill and decode pools
  std::optional<disagg_plan> disagg;
  std::string gpu;
  std::string coefficients_source;
  std::string gpu_slug;
  int tp = 1;
  int pp = 1;  ///< pipeline stages of tp GPUs each: searched where tp = 8 does not hold the model
  int replicas = 1;
  int total_gpus = 1;
  std::string quantization;
  std::string kv_cache_dtype;
  std::string gemm_kind;
  replica_state state;
  resolved_settings settings;  ///< the replica's engine settings (what the serve command passes)
  std::optional<double> cost_per_hour;
  std::optional<plan_verification> verified;
};

/// The command that starts one replica of a plan, as an argument list, and
/// what it needs beyond the flags.
struct serve_command {
  struct note {
    std::string text;       ///< e.g. that an int4 plan needs an AWQ or GPTQ checkpoint
    bool restated = false;  ///< said already beside the command: its replica count, or the prefill pool's note for the decode pool
  };
  std::vector<std::string> args;  ///< e.g. {"vllm", "serve", "meta-llama/Llama-3.1-8B-Instruct", "--tensor-parallel-size", "2", ...}
  std::vector<note> notes;        ///< in the order they are given
  std::string text() const;       ///< the arguments joined by spaces, quoted where needed
};

/// For a disaggregated plan, serve_command_for gives the prefill pool's command
/// and decode_serve_command_for the decode pool's, each with the engine's KV
/// transfer flags (vLLM's NixlConnector, SGLang's --disaggregation-mode).
serve_command decode_serve_command_for(const model_spec& m, const plan& p, std::string_view engine);

/// vLLM's `vllm serve` (engine vllm) or SGLang's `python3 -m sglang.launch_server`
/// (engine sglang) with every setting the plan relies on: tp, pp, weight and KV
/// formats, max_model_len, max_num_seqs, the chunked-prefill budget and the
/// memory fraction. The model is its Hugging Face repository (catalog models)
/// or its folder (a config.json path). input_error for engines without one.
serve_command serve_command_for(const model_spec& m, const plan& p, std::string_view engine);

/// Why one candidate (GPU, tp, quantization, KV dtype) carries no plan.
struct candidate_failure {
  int tp = 1;
  int pp = 1;
  std::string kind;    ///< "memory", "throughput", "ttft", "tpot", "itl", "unsupported"
  std::string reason;
  int stage = 0;       ///< how far the candidate got: 0 unsupported, 1 weights, 2 TPOT floor,
                       ///< 3 throughput, 4 KV capacity, 5 TTFT, 6 TPOT, 7 ITL
};

/// A family (GPU x quantization x KV dtype) none of whose tp degrees carries
/// the workload. `kind`/`reason` are the first failure of the tp degree
/// that came closest (passed the most checks; the larger tp on a tie);
/// `by_tp` has every degree's.
struct rejection {
  std::string gpu;
  std::string quantization;
  std::string kv_cache_dtype;
  int tp = 1;
  std::string kind;
  std::string reason;
  std::vector<candidate_failure> by_tp;
};

/// A price the search used.
struct price_used {
  std::string gpu;       ///< display name
  std::string gpu_slug;
  double usd_per_gpu_hour = 0;
  std::string source;    ///< "--gpu-prices", or the catalog's offering, list and date
};

struct plan_result {
  /// Feasible, best first: by cost per hour when every GPU searched has a price
  /// (ranked_by_cost), else by fewest GPUs then cost; ties by TPOT p99.
  std::vector<plan> plans;
  bool ranked_by_cost = false;
  std::vector<price_used> prices;      ///< of the GPUs searched
  std::vector<std::string> unpriced;   ///< GPUs searched without a price (names)
  int dropped_by_verify = 0;  ///< plans --verify strict dropped
  std::vector<rejection> rejected;
  int candidates = 0;       ///< candidates (GPU x tp x quantization x KV dtype) evaluated
  std::string coefficients_source;  ///< one source, or "per GPU" when they differ
  std::string engine;
};

/// Throws input_error for a workload that is not well-formed (non-positive
/// numbers, prompt + output beyond the model's context).
plan_result plan_deployment(const model_spec& m, const workload& w, const plan_options& opt, const coefficients& c);

struct verify_options {
  int top = 5;                  ///< the best plans re-checked
  bool strict = false;          ///< drop a plan whose simulated p99 misses a target
  std::int64_t requests = 4000; ///< simulated per plan
  std::uint64_t seed = 0;
};

/// Re-checks the first `v.top` plans of `r` with the simulator (plan --verify):
/// each plan's replica gets Poisson arrivals at qps / replicas with the
/// workload's fixed lengths. With `strict`, plans that miss are dropped and
/// the next ones checked until `top` verified plans remain or none is left.
void verify_plans(const model_spec& m, const workload& w, const plan_options& opt, const coefficients& c, plan_result& r,
                  const verify_options& v);

/// Disaggregated rules, as printed by `gpucal plan --mode disagg|both`.
inline constexpr const char* disagg_rule =
    "disagg: prefill replicas an M/D/1 queue of prompts (TTFT p99 = wait p99 + prefill + KV transfer + one decode step); "
    "decode replicas Little's law with no prompt chunks (TPOT p99 = decode step at a burst batch, ITL p99 at the p99 batch)";

/// The rules used for p99, as printed by `gpucal plan`.
inline constexpr const char* ttft_p99_rule =
    "TTFT p99 = 99th percentile of: rest of the step the prompt arrives in (length-biased) + its prefill steps, each "
    "carrying the running decodes and the prompts that arrived with it";
inline constexpr const char* tpot_p99_rule =
    "TPOT p99 (per request, (E2E - TTFT)/(O - 1)) = decode step at a burst batch (C + 2.33 sqrt(2C/3)) + N99 x chunk / (O - 1), "
    "N the prompt chunks its O - 1 steps carry (branching-process counts)";
inline constexpr const char* itl_p99_rule =
    "ITL p99 (per token) = decode step at the p99 batch (C + 2.33 sqrt C) + K99 x chunk, K the prompt chunks one step carries";

}  // namespace gpucal::model
