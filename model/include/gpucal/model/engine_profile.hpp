// How a serving engine spends GPU memory: the budget it takes
// (total x a fraction), what it charges against that budget before the KV
// pool, what it uses beyond it, and its defaults. One JSON file per engine
// in model/catalog/engines/, facts cited from the engine's source.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gpucal/model/coefficients.hpp"
#include "gpucal/model/kv_cache.hpp"

namespace gpucal::model {

enum class memory_item { weights, activation_peak, non_torch, nccl, cuda_context, cuda_graphs };

std::string_view memory_item_name(memory_item i);

/// A default that depends on the GPU: the first rule whose conditions hold wins.
struct tiered_value {
  std::optional<double> min_gpu_memory_gib;
  std::optional<int> min_tp;
  std::vector<std::string> except_gpus;  ///< GPU slugs containing any of these never match
  std::optional<bool> mla;                ///< only for models with (true) or without (false) MLA layers
  double value = 0;
};

/// The KV block size of MLA layers, which the engine's attention backend
/// decides: the first rule whose conditions hold wins.
struct block_rule {
  std::optional<int> min_compute_major;  ///< e.g. 10: Blackwell data-centre parts
  std::optional<bool> fp8_kv;            ///< only with (true) or without (false) an fp8 KV cache
  std::int64_t value = 16;
};

struct engine_source {
  std::string fact;
  std::string where;
};

struct engine_profile {
  std::string engine;        ///< "vllm", "sglang", "tgi", "gpucal"
  std::string display_name;
  std::string version;       ///< version whose source the facts come from

  std::string fraction_flag;  ///< e.g. "--gpu-memory-utilization"
  double fraction_default = 0.9;
  std::vector<tiered_value> fraction_rules;

  std::vector<memory_item> budget_charges;  ///< subtracted from total x fraction before the KV pool
  std::vector<memory_item> outside_budget;  ///< used beyond total x fraction
  double kv_pool_factor = 1.0;

  std::optional<std::string> forward_tokens_from;  ///< setting that sizes the profiled forward
  std::optional<std::string> sampler_rows_from;    ///< setting that gives the profiled sampler's rows
  double logits_bytes_per_element = 4;             ///< of each upcast logits copy; 0 = none kept
  /// Upcast [rows, vocab] copies alive at the profiled sampler's peak, when the
  /// version fixes it; unset: the coefficients' sampler_fp32_copies.
  std::optional<double> sampler_fp32_copies;

  coefficient step_overhead_us;  ///< per decode/prefill step beyond the kernels (scheduling, sampling, launches)

  std::int64_t block_size = 16;
  std::vector<block_rule> mla_block_rules;  ///< empty: MLA layers take block_size
  std::optional<std::int64_t> sparse_mla_block_size;  ///< DeepSeek Sparse Attention (its indexer kernels take 64)
  /// How the engine groups layer caches (profile key "kv_cache"); block_size is set per estimate.
  kv_cache_rules kv_rules;
  std::vector<tiered_value> max_num_seqs;
  std::vector<tiered_value> max_num_batched_tokens;
  bool cuda_graphs = true;

  std::vector<engine_source> sources;

  /// Memory coefficients fitted to this engine's own startup logs (`gpucal
  /// fit-engine`), by name: non_torch_bytes, nccl_bytes_per_gpu,
  /// activation_scale, activation_fixed_bytes, sampler_fp32_copies,
  /// cuda_graph_bytes. They replace the embedded defaults, never a
  /// calibration's measured figures.
  std::map<std::string, coefficient> fitted;
  memory_coefficients with_fits(const memory_coefficients& c) const;

  /// "vllm 0.33.0"
  std::string label() const { return engine + " " + version; }
  /// The MLA block size on a GPU of this compute capability with this KV dtype, if the profile sets one.
  std::optional<std::int64_t> mla_block_size_for(int compute_major, bool fp8_kv) const;
  bool charges(memory_item i) const;
  bool outside(memory_item i) const;
  /// Defaults for a GPU of `gpu_memory_bytes` whose catalog slug is `gpu_slug`, at `tp`.
  double fraction_for(std::string_view gpu_slug, std::int64_t gpu_memory_bytes, int tp, bool mla) const;
  std::int64_t max_num_seqs_for(std::string_view gpu_slug, std::int64_t gpu_memory_bytes, int tp) const;
  std::int64_t max_num_batched_tokens_for(std::string_view gpu_slug, std::int64_t gpu_memory_bytes, int tp) const;
};

/// Parses one profile (schema gpucal.engine/1); errors name the field.
engine_profile parse_engine_profile(std::string_view json_text, std::string_view where);

/// The profile `gpucal fit-engine` writes, whose "fitted" parse_engine_profile
/// reads back: `base_text` (a profile's JSON, read from `base_where`) with
/// ", fitted to startup logs" after its display_name, `fitted` under "fitted",
/// and a source naming the logs fitted to (`log_paths`) and the GPU
/// (`gpu_slug`). Indented by two spaces, ending in a newline.
std::string fitted_profile_json(std::string_view base_text, std::string_view base_where,
                                const std::map<std::string, coefficient>& fitted, const std::vector<std::string>& log_paths,
                                std::string_view gpu_slug);

}  // namespace gpucal::model
