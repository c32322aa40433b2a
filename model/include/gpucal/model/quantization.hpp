// How the linear layers of a model are stored: weight dtype, scale
// granularity, zero points. Comes from a config's `quantization_config` or
// from the --quantization flag; embeddings, the LM head, norms and MoE
// routers stay in the model dtype unless the format says otherwise.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "gpucal/model/dtype.hpp"

namespace gpucal::model {

enum class scale_granularity {
  none,     ///< unquantized
  tensor,   ///< one scale per weight tensor (vLLM's dynamic fp8)
  channel,  ///< one scale per output row (W8A8 int8)
  group,    ///< one scale per `group_size` inputs of each output row (AWQ, GPTQ)
  block,    ///< one scale per `group_size` x `group_size` tile (DeepSeek's fp8)
};

struct quant_spec {
  std::string method = "none";  ///< "none", "fp8", "int8", "awq", "gptq", "w4a16", "compressed-tensors"
  std::optional<dtype> weight;  ///< nullopt = unquantized (model dtype)
  scale_granularity granularity = scale_granularity::none;
  std::int64_t group_size = 0;  ///< inputs per group (group) or tile edge (block)
  int scale_bytes = 0;          ///< bytes per scale: 2 (fp16/bf16) or 4 (fp32)
  bool zero_points = false;     ///< asymmetric: one zero point per group, packed at the weight's bit width
  bool act_order = false;       ///< GPTQ desc_act: g_idx and a permutation, int32 per input
  bool quantize_lm_head = false;
  std::string origin = "config.json (no quantization_config)";  ///< or "config.json quantization_config", "--quantization"

  bool quantized() const { return weight.has_value(); }
  /// Human description, e.g. "int4 (awq, group 128, fp16 scales, zero points)".
  std::string describe() const;
};

/// Bytes of one linear weight of `rows` outputs x `cols` inputs stored as `q`,
/// scales and zero points included. `model_dtype` applies when unquantized.
double linear_weight_bytes(const quant_spec& q, dtype model_dtype, std::int64_t rows, std::int64_t cols);

/// The --quantization flag: none, fp8, int8, w8a8, awq, gptq, w4a16, int4.
/// `from_config` (the checkpoint's own format) supplies the group size for int4
/// methods when it has one; otherwise `group_size` (default 128) applies.
quant_spec quant_from_flag(std::string_view flag, const std::optional<quant_spec>& from_config,
                           std::optional<std::int64_t> group_size);

/// Allowed values of --quantization, for help and errors.
inline constexpr std::string_view quantization_flag_values = "none, fp8, int8, w8a8, awq, gptq, w4a16, int4";

}  // namespace gpucal::model
