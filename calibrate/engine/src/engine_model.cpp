// Shapes and weight bytes of the reference engine (see engine_model.hpp).
#include "gpucal/engine/engine_model.hpp"

#include <fmt/format.h>

#include <stdexcept>

namespace gpucal::engine {

std::string_view linear_format_name(linear_format f) {
  switch (f) {
    case linear_format::bf16: return "bf16";
    case linear_format::fp8: return "fp8";
    case linear_format::w4a16: return "w4a16";
  }
  return "?";
}

linear_format parse_linear_format(std::string_view text, std::string_view flag) {
  for (linear_format f : {linear_format::bf16, linear_format::fp8, linear_format::w4a16})
    if (text == linear_format_name(f)) return f;
  throw std::invalid_argument(fmt::format("{}: '{}' is not a linear format (allowed: bf16, fp8, w4a16)", flag, text));
}

engine_model engine_model_from(const model::model_spec& m, linear_format format, std::optional<std::int64_t> layers) {
  const auto refuse = [&](const std::string& why) {
    throw std::invalid_argument(fmt::format("model {}: the reference engine runs dense llama/qwen2/mistral decoders; {}",
                                            m.name, why));
  };
  if (m.family != "llama" && m.family != "qwen2" && m.family != "mistral")
    refuse(fmt::format("model_type '{}' is not one of llama, qwen2, mistral", m.model_type));
  if (m.layers.empty() || m.count(model::mixer_kind::attention) != m.num_layers()) refuse("every layer must be attention");
  const model::layer_spec& first = m.layers.front();
  for (const auto& l : m.layers) {
    if (l.moe) refuse("MoE layers are not supported");
    if (!l.mlp || l.mlp->intermediate_size != first.mlp->intermediate_size || l.mlp->bias || l.norms != 2)
      refuse("only dense SwiGLU layers of one width, without MLP biases, with two norms are supported");
    const auto& a = l.attention;
    if (a.window != model::attention_window::full) refuse("sliding-window layers are not supported");
    if (a.num_heads != first.attention.num_heads || a.num_kv_heads != first.attention.num_kv_heads ||
        a.head_dim != first.attention.head_dim)
      refuse("every layer must have the same attention shape");
    if (a.qk_norm || a.o_bias || a.sinks || a.output_gate) refuse("only a qkv bias is supported beyond plain GQA");
  }
  if (!m.mtp_layers.empty() || !m.vision.empty() || !m.extras.empty()) refuse("MTP layers, vision towers and extra tensors are not supported");
  const model::attention_spec& att = first.attention;
  const std::int64_t inter = first.mlp->intermediate_size;
  if (att.head_dim != 64 && att.head_dim != 128) refuse(fmt::format("head_dim {} is not 64 or 128", att.head_dim));
  if (att.num_heads % att.num_kv_heads != 0 || att.num_heads / att.num_kv_heads > 8)
    refuse(fmt::format("{} query heads over {} KV heads (at most 8 per KV head, evenly)", att.num_heads, att.num_kv_heads));
  if (!m.rope_theta) refuse("its config has no rope_theta");
  if (!m.rms_norm_eps) refuse("its config has no rms_norm_eps");
  if (m.quantization) refuse("pass an unquantized config; the linear format is the engine's own option");
  if (format == linear_format::w4a16 && (m.hidden_size % w4a16_group != 0 || inter % w4a16_group != 0 ||
                                         (att.num_heads * att.head_dim) % w4a16_group != 0))
    refuse(fmt::format("w4a16 needs hidden, intermediate and attention widths that are multiples of {}", w4a16_group));

  engine_model e;
  e.name = m.name;
  e.hidden = m.hidden_size;
  e.model_layers = m.num_layers();
  e.layers = layers.value_or(m.num_layers());
  if (e.layers < 1 || e.layers > m.num_layers())
    throw std::invalid_argument(fmt::format("--layers: {} is out of range (allowed: 1..{})", e.layers, m.num_layers()));
  e.q_heads = att.num_heads;
  e.kv_heads = att.num_kv_heads;
  e.head_dim = att.head_dim;
  e.intermediate = inter;
  e.vocab = m.vocab_size;
  e.qkv_bias = att.qkv_bias;
  e.tie_embeddings = m.tie_word_embeddings;
  e.rms_eps = *m.rms_norm_eps;
  e.rope_theta = *m.rope_theta;
  if (m.llama3_rope_scaling) {
    const auto& r = *m.llama3_rope_scaling;
    e.rope_scaling = kernels::llama3_rope_scaling{r[0], r[1], r[2], r[3]};
  }
  e.format = format;
  return e;
}

std::int64_t linear_weight_bytes(linear_format f, std::int64_t rows, std::int64_t cols) {
  switch (f) {
    case linear_format::bf16: return rows * cols * 2;
    case linear_format::fp8: return rows * cols + 4;  // e4m3 codes + one fp32 scale
    case linear_format::w4a16: {
      const std::int64_t groups = (cols + w4a16_group - 1) / w4a16_group;
      return rows * cols / 2 + rows * groups * 2 + rows * groups;  // codes, bf16 scales, zero bytes
    }
  }
  return 0;
}

std::vector<weight_tensor> weight_tensors(const engine_model& m) {
  std::vector<weight_tensor> t;
  const auto add = [&](std::string name, std::int64_t rows, std::int64_t cols, bool linear) {
    const std::int64_t bytes = linear ? linear_weight_bytes(m.format, rows, cols) : rows * cols * 2;
    t.push_back({std::move(name), rows, cols, linear, bytes});
  };
  add("embed_tokens", m.vocab, m.hidden, false);
  for (std::int64_t l = 0; l < m.layers; ++l) {
    const std::string p = fmt::format("layers.{}.", l);
    add(p + "input_norm", 1, m.hidden, false);
    add(p + "qkv", m.qkv_width(), m.hidden, true);
    if (m.qkv_bias) add(p + "qkv_bias", 1, m.qkv_width(), false);
    add(p + "o", m.hidden, m.q_width(), true);
    add(p + "post_attention_norm", 1, m.hidden, false);
    add(p + "gate_up", 2 * m.intermediate, m.hidden, true);
    add(p + "down", m.hidden, m.intermediate, true);
  }
  add("final_norm", 1, m.hidden, false);
  if (!m.tie_embeddings) add("lm_head", m.vocab, m.hidden, false);
  return t;
}

std::int64_t weight_bytes(const engine_model& m) {
  std::int64_t sum = 0;
  for (const auto& w : weight_tensors(m)) sum += w.bytes;
  return sum;
}

}  // namespace gpucal::engine
