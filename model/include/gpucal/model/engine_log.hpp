// vLLM startup logs: what one says about a deployment and its memory, and
// engine-profile coefficients fitted to many of them (`gpucal fit-engine`).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gpucal/model/catalog.hpp"
#include "gpucal/model/engine_profile.hpp"
#include "gpucal/model/fit.hpp"
#include "gpucal/model/gpu_spec.hpp"
#include "gpucal/model/model_spec.hpp"

namespace gpucal::model {

/// One worker's "Memory profiling takes ..." line (vLLM >= 0.10: "Total non
/// KV cache memory: A; torch peak memory increase: B; non-torch forward
/// increase memory: C; weights memory: D"; older releases: "model weights
/// take D; non_torch_memory takes C; PyTorch activation peak memory takes B").
struct vllm_worker_memory {
  std::string worker;  ///< "Worker_TP1", "Worker_PP0", "" for a single worker
  double weights_gib = 0, activation_gib = 0, non_torch_gib = 0;
};

/// What a vLLM startup log states; fields it does not state are unset.
struct vllm_log {
  std::string path;
  std::string version;  ///< "0.19.0"
  std::string model;    ///< as passed to vLLM (an HF repo or a path)
  int tp = 1, pp = 1;
  std::optional<double> gpu_memory_utilization;
  std::optional<std::int64_t> max_model_len, max_num_batched_tokens, max_num_seqs;
  std::string dtype = "auto", kv_cache_dtype = "auto", quantization;
  bool enforce_eager = false;
  std::optional<double> total_memory_gib;  ///< cudaMemGetInfo total as the worker logged it
  std::vector<vllm_worker_memory> workers;
  std::optional<double> available_kv_gib;
  std::optional<std::int64_t> kv_tokens;
  std::optional<double> max_concurrency;
  std::optional<double> cuda_graph_estimate_gib;
};

/// Reads the lines above from a log; throws input_error naming `path` and
/// what it looked for when the log has no version, no model or no
/// "Available KV cache memory" line.
vllm_log parse_vllm_log(std::string_view text, std::string_view path);

/// One log against the model: what the engine logged and what gpucal predicts
/// for the same deployment.
struct engine_log_check {
  std::string path, model;
  int tp = 1, pp = 1;
  bool held_out = false;   ///< not used by the fit
  double measured_kv_gib = 0, predicted_kv_gib = 0;
  std::optional<double> measured_tokens, predicted_tokens;
  double error_pct() const { return 100 * (predicted_kv_gib - measured_kv_gib) / measured_kv_gib; }
};

/// The size of the available-KV errors (|engine_log_check::error_pct()|) over some logs.
struct kv_error_stats {
  double median_pct = 0, max_pct = 0;  ///< 0 when there is no log
  std::size_t logs = 0;
};

struct engine_log_fit {
  std::map<std::string, coefficient> fitted;  ///< for engine_profile::fitted
  std::vector<fit_result> fits;               ///< with residuals
  std::vector<engine_log_check> checks;       ///< every log, predicted with the fitted profile
  std::vector<std::string> skipped;           ///< logs not used, with the reason
  /// Over the checks held out of the fit (`held_out`), or over those it used.
  kv_error_stats kv_error(bool held_out) const;
};

/// Fits the memory terms a vLLM profile charges to the logs' own figures:
/// activation_scale and activation_fixed_bytes to the workers' torch peak
/// increase (against the model's forward and sampler peak at the logged
/// max_num_batched_tokens and max_num_seqs), non_torch_bytes to the median
/// non-torch growth at tp = pp = 1 and nccl_bytes_per_gpu to the median growth
/// above it at tp > 1. Every `holdout`-th log (0: none) is kept out of the fit
/// and only predicted. `resolve` maps a log's model name to a model.
engine_log_fit fit_engine_to_logs(const std::vector<vllm_log>& logs, const engine_profile& base, const gpu_spec& gpu,
                                  const coefficients& defaults, int holdout,
                                  const std::function<model_spec(const std::string&)>& resolve);

}  // namespace gpucal::model
