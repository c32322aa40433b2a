// The memory model: per GPU, weights (tensor by tensor, by storage format),
// the KV cache and recurrent state (kv_cache.hpp), the activation peak of
// the engine's profiling forward and sampler pass, framework overhead, and
// the paged pool that is left:
//   pool = (total x fraction - charged items) x kv_pool_factor
//   num_blocks = floor(pool / bytes_per_block)
// with the charged items, the fraction and the defaults taken from the
// engine profile and the overheads from the coefficients.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "gpucal/model/coefficients.hpp"
#include "gpucal/model/dtype.hpp"
#include "gpucal/model/engine_profile.hpp"
#include "gpucal/model/gpu_spec.hpp"
#include "gpucal/model/kv_cache.hpp"
#include "gpucal/model/model_spec.hpp"
#include "gpucal/model/quantization.hpp"
#include "gpucal/model/tensor_inventory.hpp"

namespace gpucal::model {

/// Bytes of the weights one GPU holds, by tensor group: each instance in the
/// format `q` gives its module (ignore lists and mixed formats apply per layer).
double group_weight_bytes(const tensor_group& g, const quant_spec& q, dtype model_dtype);

/// The checkpoint's tensor bytes in its own format and dtype, MTP layers and
/// vision tower included: what its safetensors index totals.
std::int64_t checkpoint_bytes(const model_spec& m);
/// checkpoint_bytes by role (the names of tensor_role_name), each rounded to bytes.
std::map<std::string, std::int64_t> checkpoint_bytes_by_role(const model_spec& m);

struct weight_row {
  std::string role;
  std::int64_t params = 0;  ///< whole model
  double bytes = 0;         ///< one GPU
};

/// Flags as a user passes them; unset = the config's or the engine's default.
struct estimate_options {
  int tp = 1;
  int pp = 1;  ///< pipeline stages (--pipeline-parallel-size); each GPU of a stage holds its layers / tp
  std::optional<std::string> dtype;           ///< auto, bfloat16, float16, float32
  std::optional<std::string> quantization;    ///< see quantization_flag_values
  std::optional<std::int64_t> group_size;
  std::optional<std::string> kv_cache_dtype;  ///< auto, bfloat16, float16, fp8, fp8_e4m3, fp8_e5m2
  std::optional<double> gpu_memory_utilization;
  std::optional<std::int64_t> max_model_len;
  std::optional<std::int64_t> max_num_seqs;
  std::optional<std::int64_t> max_num_batched_tokens;
  std::optional<std::int64_t> block_size;
  bool enforce_eager = false;                 ///< no CUDA graphs
};

/// A resolved setting and where its value came from ("--flag", "vllm default", "config.json").
struct setting_origin {
  std::string name;
  std::string value;
  std::string origin;
};

struct resolved_settings {
  int tp = 1;
  int pp = 1;
  dtype model_dtype = dtype::bfloat16;
  quant_spec quant;
  dtype kv_dtype = dtype::bfloat16;
  double memory_fraction = 0.9;
  std::int64_t max_model_len = 0;
  std::int64_t max_num_seqs = 0;
  std::int64_t max_num_batched_tokens = 0;
  std::int64_t block_size = 16;
  bool cuda_graphs = true;
  std::vector<setting_origin> origins;
};

/// Applies flags over the config's and the engine's defaults, validating each.
resolved_settings resolve_settings(const model_spec& m, const gpu_spec& gpu, const engine_profile& engine,
                                   const estimate_options& opt, std::int64_t gpu_total_bytes);

struct activation_estimate {
  std::int64_t forward_tokens = 0;  ///< tokens of the profiled forward
  std::int64_t sampler_rows = 0;    ///< rows of logits in the profiled sampler pass
  double forward_bytes = 0;         ///< live tensors of the widest layer stage
  std::string widest_stage;         ///< "attention", "mlp" or "moe"
  double sampler_bytes = 0;         ///< hidden states + logits and sampler temporaries
  std::int64_t peak_bytes = 0;      ///< scale x max(forward, sampler) + fixed
};

/// Peak of one forward over `tokens` tokens and a sampler pass over `rows`
/// rows, per GPU, in the activation dtype.
activation_estimate estimate_activation(const model_spec& m, const resolved_settings& s, const engine_profile& engine,
                                        const memory_coefficients& c, std::int64_t tokens, std::int64_t rows);

struct memory_estimate {
  model_spec model;
  gpu_spec gpu;
  engine_profile engine;
  resolved_settings settings;
  std::string coefficients_source;

  std::int64_t params = 0;             ///< parameters the engine loads
  std::int64_t checkpoint_params = 0;  ///< every parameter the checkpoint stores (MTP layers included)
  std::int64_t active_params = 0;
  std::vector<weight_row> weights_by_role;
  std::int64_t weights_bytes = 0;

  std::vector<layer_cache> caches;  ///< one per layer cache (DSA layers have two)
  kv_plan kv;
  activation_estimate activation;

  std::int64_t cuda_context_bytes = 0;
  std::int64_t non_torch_bytes = 0;  ///< cuBLAS workspaces and other memory outside the allocator
  std::int64_t nccl_bytes = 0;       ///< NCCL and custom all-reduce buffers, tp > 1
  std::int64_t cuda_graph_bytes = 0;

  std::int64_t gpu_total_bytes = 0;
  std::string gpu_total_source;
  std::int64_t budget_bytes = 0;   ///< total x fraction
  std::int64_t charged_bytes = 0;  ///< items charged against the budget before the pool
  std::int64_t outside_bytes = 0;  ///< items the engine uses beyond the budget
  std::int64_t kv_pool_bytes = 0;
  std::int64_t block_bytes = 0;     ///< one block id across the widest layer group (kv.bytes_per_block)
  std::int64_t num_blocks = 0;
  /// Tokens the pool holds, as the engine reports them ("GPU KV cache size"):
  /// floor(max_concurrency x max_model_len) for vLLM >= 0.19, num_blocks /
  /// groups x block_size for vLLM 0.11 (equal for one full-attention group).
  std::int64_t max_tokens = 0;
  /// Requests of max_model_len tokens the pool holds at once: num_blocks /
  /// blocks per request, every layer group (sliding windows, states) counted.
  double max_concurrency = 0;
  std::string capacity_bound;       ///< which group takes most blocks per request
  std::int64_t request_bytes = 0;   ///< KV and state of one request at max_model_len
  std::int64_t headroom_bytes = 0;  ///< total - budget - outside (negative: OOM risk)

  bool fits = false;
  std::vector<std::string> failures;  ///< why it does not fit, first reason first
  std::vector<std::string> advice;    ///< which flags of `estimate` would help, one per failure
  std::int64_t spare_bytes = 0;       ///< when it fits: the smallest slack of the fit conditions
  std::int64_t shortfall_bytes = 0;   ///< when it does not: what the tightest condition lacks (>= 0)
  std::vector<std::string> notes;

  /// With pipeline parallelism: one row per stage. The figures above are
  /// those of the stage with the fewest KV blocks, which every stage then
  /// allocates (the engine takes the minimum over its workers); the
  /// parameter counts are the whole model's.
  struct stage {
    int index = 0;
    std::int64_t first_layer = 0, layers = 0;
    std::int64_t weights_bytes = 0, activation_peak_bytes = 0, kv_pool_bytes = 0, num_blocks = 0;
    bool fits = false;
  };
  std::vector<stage> stages;

  /// Framework overhead per GPU: CUDA context + non-torch + NCCL.
  std::int64_t overhead_bytes() const { return cuda_context_bytes + non_torch_bytes + nccl_bytes; }
};

/// `inventory`, when given, is build_inventory(m, opt.tp), reused across
/// estimates of one model (the planner's search).
memory_estimate estimate_memory(const model_spec& m, const gpu_spec& gpu, const engine_profile& engine,
                                const coefficients& coeffs, const estimate_options& opt,
                                const tensor_inventory* inventory = nullptr);

}  // namespace gpucal::model
