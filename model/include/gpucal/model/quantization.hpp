// How the linear layers of a model are stored: weight dtype, scale
// granularity, zero points, per-tensor scalars, and which modules a
// checkpoint leaves unquantized (ignore lists) or stores in another format
// (mixed checkpoints). Comes from a config's `quantization_config` (and a
// ModelOpt hf_quant_config.json) or from the --quantization flag;
// embeddings, the LM head, norms and MoE routers stay in the model dtype
// unless the format says otherwise.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "gpucal/model/dtype.hpp"

namespace gpucal::model {

enum class scale_granularity {
  none,     ///< unquantized
  tensor,   ///< one scale per weight tensor (vLLM's dynamic fp8)
  channel,  ///< one scale per output row (W8A8 int8)
  group,    ///< one scale per `group_size` inputs of each output row (AWQ, GPTQ, NVFP4, MXFP4)
  block,    ///< one scale per `group_size` x `group_size` tile (DeepSeek's fp8)
};

/// The storage of one linear weight.
struct quant_format {
  std::optional<dtype> weight;  ///< nullopt = unquantized (model dtype)
  scale_granularity granularity = scale_granularity::none;
  std::int64_t group_size = 0;  ///< inputs per group (group) or tile edge (block)
  int scale_bytes = 0;          ///< bytes per scale: 1 (fp8 e4m3 / e8m0), 2 (fp16/bf16) or 4 (fp32)
  bool zero_points = false;     ///< asymmetric: one zero point per group, packed at the weight's bit width
  bool act_order = false;       ///< GPTQ desc_act: g_idx and a permutation, int32 per input
  int tensor_scale_bytes = 0;   ///< fp32 scalars per tensor beyond the scales (NVFP4 weight_scale_2 + input_scale)
  std::string name;             ///< "nvfp4", "mxfp4", "fp8", "int4", ... ("" = derived from the fields)

  bool quantized() const { return weight.has_value(); }
  /// Human description, e.g. "int4 (awq, group 128, 16-bit scales, zero points)"
  /// with `lead` (the method) first among the details.
  std::string describe_format(std::string_view lead = "") const;
};

/// ModelOpt NVFP4: e2m1 weights packed two per byte, one fp8-e4m3 scale per
/// 16 inputs, and per tensor an fp32 weight_scale_2 and input_scale.
quant_format nvfp4_format();
/// OCP MXFP4: e2m1 weights, one e8m0 (uint8) scale per `group` (32) inputs.
quant_format mxfp4_format(std::int64_t group = 32);

/// Glob (fnmatch: * and ?), "re:" regular expression (matched from the
/// start, as compressed-tensors does), or a plain module name that also
/// covers the modules below it. The container before "layers." (model.,
/// model.language_model., language_model.model., backbone.) is ignored on
/// both sides of a glob or name, since checkpoints of one family nest the
/// decoder differently. A
/// "*" in the module (all experts of a layer) stands for expert 0 when a
/// pattern names one expert.
bool module_matches(std::string_view pattern, std::string_view module);

struct quant_spec : quant_format {
  std::string method = "none";  ///< "none", "fp8", "int8", "awq", "gptq", "w4a16", "compressed-tensors", "modelopt", "mxfp4"
  bool quantize_lm_head = false;
  std::vector<std::string> ignore;                          ///< modules left in the model dtype
  std::vector<std::pair<std::string, quant_format>> rules;  ///< modules stored in another format; first match wins
  std::optional<dtype> checkpoint_kv_dtype;  ///< KV-cache dtype the checkpoint was calibrated for (ModelOpt kv_cache_quant_algo)
  std::string origin = "config.json (no quantization_config)";  ///< or "config.json quantization_config", "--quantization"

  /// The format of the linear weight at `module` (e.g.
  /// "model.layers.3.mlp.experts.*.down_proj"): a rule's, the default, or an
  /// unquantized format when an ignore pattern matches. Memoized per module.
  const quant_format& format_for(const std::string& module) const;
  /// Human description, e.g. "int4 (awq, group 128, fp16 scales, zero points)".
  std::string describe() const;

private:
  // A cache that belongs to one object: its entries point into that object
  // (its rules, or itself), so a copy or a move starts empty instead of
  // sharing pointers into an object that may be gone.
  template <typename T>
  struct own_cache {
    std::shared_ptr<T> ptr;
    own_cache() = default;
    own_cache(const own_cache&) {}
    own_cache(own_cache&&) noexcept {}
    own_cache& operator=(const own_cache&) {
      ptr.reset();
      return *this;
    }
    own_cache& operator=(own_cache&&) noexcept {
      ptr.reset();
      return *this;
    }
  };
  struct index;
  struct lookup_memo {
    std::unordered_map<std::string, const quant_format*> formats;
    std::uint64_t pattern_tests = 0;  ///< globs and regexes tried so far (bounded: limits::pattern_tests)
  };
  mutable own_cache<lookup_memo> memo_;
  mutable own_cache<const index> index_;  // exact-name rules and ignores in hash maps, globs and regexes apart
};

/// Bytes of one linear weight of `rows` outputs x `cols` inputs stored as `q`,
/// scales, zero points and per-tensor scalars included. `model_dtype`
/// applies when unquantized.
double linear_weight_bytes(const quant_format& q, dtype model_dtype, std::int64_t rows, std::int64_t cols);

/// The --quantization flag: none, fp8, int8, w8a8, awq, gptq, w4a16, int4,
/// nvfp4, mxfp4. `from_config` (the checkpoint's own format) supplies the
/// group size for int4 methods and the ignore list it keeps; otherwise
/// `group_size` (default 128) applies.
quant_spec quant_from_flag(std::string_view flag, const std::optional<quant_spec>& from_config,
                           std::optional<std::int64_t> group_size);

/// `group` when it is a group size weights can have (a power of two from 16
/// to 1024, as GPTQ, AWQ and compressed-tensors checkpoints use); otherwise
/// throws input_error naming `what` (a flag, or a config field).
std::int64_t checked_group_size(std::int64_t group, std::string_view what);

/// Allowed values of --quantization, for help and errors.
inline constexpr std::string_view quantization_flag_values = "none, fp8, int8, w8a8, awq, gptq, w4a16, int4, nvfp4, mxfp4";

}  // namespace gpucal::model
