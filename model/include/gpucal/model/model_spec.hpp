// The architecture of a decoder-only LLM as gpucal needs it: shapes,
// attention kind (GQA, MLA, sliding windows), MoE layout and storage
// format. Parsed from a Hugging Face config.json.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gpucal/model/dtype.hpp"
#include "gpucal/model/quantization.hpp"

namespace gpucal::model {

struct moe_spec {
  std::int64_t num_experts = 0;        ///< routed experts per MoE layer
  std::int64_t experts_per_token = 0;  ///< top-k
  std::int64_t expert_intermediate_size = 0;
  std::int64_t shared_intermediate_size = 0;  ///< total width of the shared expert(s); 0 = none
  bool shared_expert_gate = false;            ///< qwen2_moe: a sigmoid gate (hidden -> 1) on the shared expert
  bool router_bias = false;                   ///< deepseek_v3: e_score_correction_bias, one per expert
  std::vector<bool> moe_layers;               ///< per layer: true = MoE MLP, false = dense MLP
};

struct mla_spec {
  std::int64_t q_lora_rank = 0;  ///< 0 = no low-rank query path (q_proj directly)
  std::int64_t kv_lora_rank = 0;
  std::int64_t qk_nope_head_dim = 0;
  std::int64_t qk_rope_head_dim = 0;
  std::int64_t v_head_dim = 0;
};

struct model_spec {
  std::string name;        ///< catalog name or the config's path
  std::string model_type;  ///< Hugging Face model_type (for gemma3 the text model's)
  std::string source;      ///< where the config came from

  std::int64_t hidden_size = 0;
  std::int64_t intermediate_size = 0;  ///< dense MLP width (0 if every layer is MoE)
  std::int64_t num_layers = 0;
  std::int64_t num_heads = 0;
  std::int64_t num_kv_heads = 0;
  std::int64_t head_dim = 0;
  std::int64_t vocab_size = 0;
  std::int64_t max_position_embeddings = 0;
  std::int64_t max_model_len = 0;  ///< longest context the config supports (rope scaling applied)

  bool tie_word_embeddings = false;
  bool qkv_bias = false;
  bool o_bias = false;
  bool mlp_bias = false;
  bool qk_norm = false;           ///< per-head RMSNorm on q and k (qwen3, gemma3)
  int norms_per_layer = 2;        ///< RMSNorms of hidden_size per layer (4 for gemma2/3)

  // Numerics of the forward, for gpucal's reference engine (absent when the config omits them).
  std::optional<double> rope_theta;    ///< rotary base, config's rope_theta
  std::optional<double> rms_norm_eps;  ///< config's rms_norm_eps
  /// rope_scaling with rope_type "llama3": factor, low_freq_factor, high_freq_factor,
  /// original_max_position_embeddings, in that order.
  std::optional<std::vector<double>> llama3_rope_scaling;

  std::optional<std::int64_t> sliding_window;  ///< window in tokens, where some layers use one
  std::vector<bool> sliding_layers;            ///< per layer: true = sliding-window attention

  std::optional<moe_spec> moe;
  std::optional<mla_spec> mla;

  dtype torch_dtype = dtype::bfloat16;        ///< the config's torch_dtype
  std::optional<quant_spec> quantization;      ///< the config's quantization_config
  std::vector<std::string> notes;              ///< what the parser left out or assumed

  std::int64_t num_sliding_layers() const;
};

/// Families whose config.json gpucal understands.
inline constexpr std::string_view supported_model_types =
    "llama, mistral, qwen2, qwen3, mixtral, qwen2_moe, qwen3_moe, deepseek_v2, deepseek_v3, gemma2, gemma3, "
    "gemma3_text, phi3";

/// Parses a Hugging Face config.json. Throws input_error naming the field
/// (prefixed with `where`) when a required field is missing, has the wrong
/// type or an unsupported value.
model_spec parse_hf_config(std::string_view json_text, std::string_view name, std::string_view where);

}  // namespace gpucal::model
