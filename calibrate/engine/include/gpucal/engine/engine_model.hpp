// The shapes the reference engine runs: a dense decoder of the llama / qwen2 /
// mistral families (GQA, RMSNorm, rotary embeddings, SiLU-gated MLP, fused
// qkv and gate|up projections as vLLM fuses them), taken from a model_spec,
// optionally truncated to fewer layers; the storage format of its linear
// layers; and the bytes of every tensor it allocates.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gpucal/kernels/reference_ops.hpp"
#include "gpucal/model/model_spec.hpp"

namespace gpucal::engine {

/// Storage of the linear layers (qkv, o, gate|up, down). Embeddings, norms and
/// the LM head stay bf16.
enum class linear_format {
  bf16,   ///< bf16 weights, cuBLASLt
  fp8,    ///< fp8 e4m3 weights with one fp32 scale per tensor, activations quantized per tensor at run time, cuBLASLt
  w4a16,  ///< INT4 codes, one bf16 scale and one zero byte per 128 inputs of a row, gpucal's W4A16 kernel
};
std::string_view linear_format_name(linear_format f);
/// Parses "bf16", "fp8" or "w4a16"; throws std::invalid_argument naming `flag` and the allowed values.
linear_format parse_linear_format(std::string_view text, std::string_view flag);

inline constexpr std::int64_t w4a16_group = 128;

struct engine_model {
  std::string name;
  std::int64_t hidden = 0;
  std::int64_t layers = 0;       ///< layers this engine runs
  std::int64_t model_layers = 0; ///< layers of the full model (layers < model_layers: a truncated stack)
  std::int64_t q_heads = 0;
  std::int64_t kv_heads = 0;
  std::int64_t head_dim = 0;
  std::int64_t intermediate = 0;
  std::int64_t vocab = 0;
  bool qkv_bias = false;
  bool tie_embeddings = false;
  double rms_eps = 1e-5;
  double rope_theta = 10000;
  std::optional<kernels::llama3_rope_scaling> rope_scaling;
  linear_format format = linear_format::bf16;

  std::int64_t q_width() const { return q_heads * head_dim; }
  std::int64_t kv_width() const { return kv_heads * head_dim; }
  std::int64_t qkv_width() const { return q_width() + 2 * kv_width(); }
  /// KV bytes per token over the layers run, bf16 cache: 2 x layers x kv_heads x head_dim x 2.
  std::int64_t kv_bytes_per_token() const { return 2 * layers * kv_width() * 2; }
};

/// The engine's shapes for a model_spec. Throws std::invalid_argument naming
/// what the engine does not support (MoE, MLA, sliding windows, per-head q/k
/// norms, biases other than qkv, head_dim other than 64 or 128, more than 8
/// query heads per KV head). `layers`: run only that many (1..num_layers).
engine_model engine_model_from(const model::model_spec& m, linear_format format, std::optional<std::int64_t> layers);

/// One weight tensor as the engine allocates it.
struct weight_tensor {
  std::string name;           ///< e.g. "layers.3.qkv"
  std::int64_t rows = 0;      ///< output features (or vocab rows)
  std::int64_t cols = 0;      ///< input features
  bool linear = false;        ///< stored in the linear format
  std::int64_t bytes = 0;     ///< device bytes of the tensor and its scales / zeros
};

/// Every weight tensor, in allocation order, with its exact device bytes.
std::vector<weight_tensor> weight_tensors(const engine_model& m);
std::int64_t weight_bytes(const engine_model& m);
/// Device bytes of one linear weight of rows x cols in `f`.
std::int64_t linear_weight_bytes(linear_format f, std::int64_t rows, std::int64_t cols);

}  // namespace gpucal::engine
