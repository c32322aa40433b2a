// Gemma (v1), Gemma 2 and Gemma 3 text decoders (transformers GemmaConfig,
// Gemma2Config, Gemma3TextConfig). Keys a config omits take the config
// class's defaults, as transformers fills them: the text_config of a
// multimodal Gemma 3 checkpoint leaves out the head counts, for example.
#include <fmt/format.h>

#include "arch/family.hpp"

namespace gpucal::model::arch {

namespace {

// The defaults of each config class (transformers 5.24.0,
// models/gemma*/configuration_gemma*.py), for the keys gpucal reads.
json class_defaults(const std::string& type) {
  if (type == "gemma")
    return {{"vocab_size", 256000}, {"hidden_size", 3072}, {"intermediate_size", 24576}, {"num_hidden_layers", 28},
            {"num_attention_heads", 16}, {"num_key_value_heads", 16}, {"head_dim", 256}, {"max_position_embeddings", 8192},
            {"rms_norm_eps", 1e-6}, {"tie_word_embeddings", true}};
  if (type == "gemma2")
    return {{"vocab_size", 256000}, {"hidden_size", 2304}, {"intermediate_size", 9216}, {"num_hidden_layers", 26},
            {"num_attention_heads", 8}, {"num_key_value_heads", 4}, {"head_dim", 256}, {"max_position_embeddings", 8192},
            {"rms_norm_eps", 1e-6}, {"tie_word_embeddings", true}, {"sliding_window", 4096}};
  return {{"vocab_size", 262208}, {"hidden_size", 2304}, {"intermediate_size", 9216}, {"num_hidden_layers", 26},
          {"num_attention_heads", 8}, {"num_key_value_heads", 4}, {"head_dim", 256}, {"max_position_embeddings", 131072},
          {"rms_norm_eps", 1e-6}, {"tie_word_embeddings", true}, {"sliding_window", 4096}};
}

}  // namespace

void gemma_family(const config_view& v, model_spec& m) {
  std::vector<std::string> filled;
  json defaults = class_defaults(v.variant);
  // A multimodal wrapper's own tie_word_embeddings wins over the text class's default.
  if (v.wrapped && v.root.contains("tie_word_embeddings")) defaults.erase("tie_word_embeddings");
  const json text = with_defaults(v.cfg.object_json(), defaults, filled);
  const config_view g{v.root, field_reader(text, v.cfg.where()), v.where, v.wrapped};
  const field_reader& cfg = g.cfg;
  const std::int64_t layers = read_base(g, m, {.tie_word_embeddings = true});
  if (!filled.empty()) {
    std::string keys;
    for (const auto& f : filled) keys += (keys.empty() ? "" : ", ") + f;
    m.notes.push_back(fmt::format("keys absent from the config take {}'s defaults (transformers): {}",
                                  v.variant == "gemma" ? "GemmaConfig" : v.variant == "gemma2" ? "Gemma2Config" : "Gemma3TextConfig",
                                  keys));
  }
  attention_spec a = read_attention(cfg, m.hidden_size);
  a.qkv_bias = cfg.boolean_or("attention_bias", false);
  a.o_bias = a.qkv_bias;
  a.qk_norm = v.variant == "gemma3_text";
  // Gemma 2/3 norm the input and output of both attention and MLP: four norms per layer.
  m.layers = dense_layers(layers, a, cfg.dim("intermediate_size", max_width), v.variant == "gemma" ? 2 : 4);
  if (v.variant == "gemma") return;

  std::vector<bool> sliding(static_cast<std::size_t>(layers));
  if (const auto lt = read_layer_types(cfg, layers, {"sliding_attention", "full_attention"})) {
    for (std::size_t i = 0; i < lt->size(); ++i) sliding[i] = (*lt)[i] == "sliding_attention";
  } else {
    // Gemma2Config: layers 0, 2, 4, ... slide; Gemma3TextConfig: every sliding_window_pattern-th layer is global (default 6).
    const std::int64_t pattern = v.variant == "gemma2" ? 2 : cfg.dim_or("sliding_window_pattern", 6, max_layers);
    for (std::int64_t i = 0; i < layers; ++i) sliding[static_cast<std::size_t>(i)] = (i + 1) % pattern != 0;
  }
  apply_sliding(m.layers, sliding, cfg.dim("sliding_window", max_context));
}

}  // namespace gpucal::model::arch
