// Dense Llama-style decoders: llama, mistral, qwen2, qwen3 (transformers
// LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config). Every layer is GQA
// attention and a SwiGLU MLP; the families differ in biases, q/k norms and
// sliding-window rules.
#include <fmt/format.h>

#include "arch/family.hpp"

namespace gpucal::model::arch {

namespace {

// Per-layer sliding flags from `layer_types` (newer configs) or the family's rule.
std::vector<bool> llama_sliding(const field_reader& cfg, const std::string& type, std::int64_t layers) {
  std::vector<bool> sliding(static_cast<std::size_t>(layers), false);
  if (const auto lt = read_layer_types(cfg, layers, {"sliding_attention", "full_attention"})) {
    for (std::size_t i = 0; i < lt->size(); ++i) sliding[i] = (*lt)[i] == "sliding_attention";
  } else if (type.starts_with("qwen")) {
    // Qwen2/Qwen3: the window applies only with use_sliding_window, from layer max_window_layers on.
    if (cfg.boolean_or("use_sliding_window", false)) {
      const std::int64_t from = cfg.count_or("max_window_layers", 0, max_layers);
      for (std::int64_t i = from; i < layers; ++i) sliding[static_cast<std::size_t>(i)] = true;
    }
  } else {
    // llama, mistral: a non-null sliding_window applies to every layer.
    std::fill(sliding.begin(), sliding.end(), cfg.has("sliding_window"));
  }
  return sliding;
}

}  // namespace

void llama_family(const config_view& v, model_spec& m) {
  const field_reader& cfg = v.cfg;
  const std::int64_t layers = read_base(v, m);
  // Older configs (Llama 2) omit them; transformers' LlamaConfig, MistralConfig
  // and Qwen2Config then use rope_theta = 10000.0 and rms_norm_eps = 1e-6.
  if (!m.rope_theta) {
    m.rope_theta = 10000.0;
    m.notes.push_back("rope_theta absent: transformers' default 10000.0 assumed");
  }
  if (!m.rms_norm_eps) {
    m.rms_norm_eps = 1e-6;
    m.notes.push_back("rms_norm_eps absent: transformers' default 1e-6 assumed");
  }
  attention_spec a = read_attention(cfg, m.hidden_size);
  const std::string& type = v.variant;
  if (type == "qwen2") {
    a.qkv_bias = true;  // Qwen2Attention: q/k/v always carry a bias
  } else {
    a.qkv_bias = cfg.boolean_or("attention_bias", false);
    // LlamaAttention and GraniteAttention: o_proj's bias follows attention_bias.
    a.o_bias = a.qkv_bias && (type == "llama" || type == "mistral" || type == "granite");
  }
  a.qk_norm = type == "qwen3";
  m.layers = dense_layers(layers, a, cfg.dim("intermediate_size", max_width));
  if (cfg.boolean_or("mlp_bias", false))
    for (auto& l : m.layers) l.mlp->bias = true;
  const std::vector<bool> sliding = llama_sliding(cfg, type, layers);
  if (std::find(sliding.begin(), sliding.end(), true) != sliding.end())
    apply_sliding(m.layers, sliding, cfg.dim("sliding_window", max_context));
  // MiMo (a Qwen2 decoder, vLLM mimo.py / mimo_mtp.py) stores its MTP layers:
  // a decoder layer with token and hidden norms, an input projection joining
  // them and a final norm.
  const std::int64_t mtp = cfg.count_or("num_nextn_predict_layers", 0, 64);
  const std::int64_t h = m.hidden_size;
  for (std::int64_t k = 0; k < mtp; ++k) {
    layer_spec l = m.layers.back();
    l.extras = {{"token_layernorm", tensor_role::norm, h, 1}, {"hidden_layernorm", tensor_role::norm, h, 1},
                {"input_proj", tensor_role::mtp, h, 2 * h, 1, shard::replicated, true},
                {"final_layernorm", tensor_role::norm, h, 1}};
    m.mtp_layers.push_back(l);
  }
  if (mtp > 0) {
    m.naming.mtp_layers = "model.mtp_layers";
    m.notes.push_back(fmt::format("{} multi-token-prediction layer(s) are stored but not loaded: vLLM loads them only for "
                                  "speculative decoding", mtp));
  }
}

}  // namespace gpucal::model::arch
