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
  const json text = with_class_defaults(v, class_defaults(v.variant),
                                        v.variant == "gemma" ? "GemmaConfig" : v.variant == "gemma2" ? "Gemma2Config" : "Gemma3TextConfig", m);
  const config_view g{v.root, field_reader(text, v.cfg.where()), v.where, v.wrapped, v.variant};
  const field_reader& cfg = g.cfg;
  const std::int64_t layers = read_base(g, m, arch_defaults([](base_defaults& d) { d.tie_word_embeddings = true; }));
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

namespace gpucal::model::arch {

// Gemma 4 (transformers Gemma4TextConfig; vLLM gemma4.py): sliding layers
// with head_dim and num_key_value_heads, full layers with global_head_dim
// (512) and, with attention_k_eq_v, num_global_key_value_heads and no v_proj
// (values are the keys); a dense MLP on every layer and, with
// enable_moe_block, a MoE block beside it; the last num_kv_shared_layers
// reuse an earlier layer's cache; optional per-layer embeddings.
void gemma4_family(const config_view& v, model_spec& m) {
  const json text = with_class_defaults(v, {{"vocab_size", 262144}, {"hidden_size", 2304}, {"intermediate_size", 9216},
                                            {"num_hidden_layers", 30}, {"num_attention_heads", 8}, {"num_key_value_heads", 4},
                                            {"head_dim", 256}, {"max_position_embeddings", 131072}, {"rms_norm_eps", 1e-6},
                                            {"sliding_window", 512}},
                                        "Gemma4TextConfig", m);
  const config_view g{v.root, field_reader(text, v.cfg.where()), v.where, v.wrapped, v.variant};
  const field_reader& cfg = g.cfg;
  const std::int64_t layers = read_base(g, m, arch_defaults([](base_defaults& d) { d.tie_word_embeddings = true; }));
  attention_spec sliding = read_attention(cfg, m.hidden_size);
  sliding.qk_norm = true;
  sliding.qkv_bias = sliding.o_bias = cfg.boolean_or("attention_bias", false);
  sliding.window = attention_window::sliding;
  sliding.window_tokens = cfg.dim("sliding_window", max_context);
  attention_spec full = sliding;
  full.window = attention_window::full;
  full.window_tokens = 0;
  full.head_dim = full.v_head_dim = cfg.dim_or("global_head_dim", 512, max_heads);
  full.k_eq_v = cfg.boolean_or("attention_k_eq_v", false);
  if (full.k_eq_v && cfg.has("num_global_key_value_heads")) full.num_kv_heads = cfg.dim("num_global_key_value_heads", max_heads);
  if (full.num_heads % full.num_kv_heads != 0)
    cfg.fail("num_global_key_value_heads", fmt::format("{} does not divide num_attention_heads {}", full.num_kv_heads, full.num_heads));

  std::vector<bool> is_full(static_cast<std::size_t>(layers));
  if (const auto lt = read_layer_types(cfg, layers, {"sliding_attention", "full_attention"})) {
    for (std::size_t i = 0; i < lt->size(); ++i) is_full[i] = (*lt)[i] == "full_attention";
  } else {
    for (std::int64_t i = 0; i < layers; ++i) is_full[static_cast<std::size_t>(i)] = (i + 1) % 6 == 0;
  }
  is_full.back() = true;  // Gemma4TextConfig forces the last layer to full attention

  const std::int64_t inter = cfg.dim("intermediate_size", max_width);
  const std::int64_t shared_from = layers - cfg.count_or("num_kv_shared_layers", 0, layers);
  const bool double_wide = cfg.boolean_or("use_double_wide_mlp", false);
  std::optional<moe_spec> moe;
  if (cfg.boolean_or("enable_moe_block", false)) {
    moe = read_moe(cfg, "num_experts", "top_k_experts", "moe_intermediate_size");
  }
  const std::int64_t ple = cfg.count_or("hidden_size_per_layer_input", 256, max_width);
  const std::int64_t h = m.hidden_size;
  for (std::int64_t i = 0; i < layers; ++i) {
    layer_spec l;
    l.mixer = mixer_kind::attention;
    l.attention = is_full[static_cast<std::size_t>(i)] ? full : sliding;
    const bool shared = i >= shared_from;
    l.attention.kv_shared = shared;
    l.mlp = mlp_spec{shared && double_wide ? 2 * inter : inter};
    l.norms = 4;  // input, post-attention, pre- and post-feed-forward
    l.extras.push_back({"layer_scalar", tensor_role::other, 1, 1});  // a persistent buffer the checkpoint stores
    if (l.attention.k_eq_v && !shared) {
      // vLLM's QKVParallelLinear keeps a V slot for k_eq_v layers and loads k_proj into it.
      const attention_spec& a = l.attention;
      l.extras.push_back({"self_attn.v_proj (k_eq_v copy)", tensor_role::attention, a.num_kv_heads * a.head_dim, h, 1,
                          shard::column, true, false});
    }
    if (moe) {
      l.moe = moe;
      l.norms += 3;  // pre_feedforward_layernorm_2, post_feedforward_layernorm_1 and _2
      l.extras.push_back({"router.scale", tensor_role::router, h, 1});
      l.extras.push_back({"router.per_expert_scale", tensor_role::router, moe->num_experts, 1});
    }
    if (ple > 0) {
      l.extras.push_back({"per_layer_input_gate", tensor_role::other, ple, h, 1, shard::replicated, true});
      l.extras.push_back({"per_layer_projection", tensor_role::other, h, ple, 1, shard::replicated, true});
      l.extras.push_back({"post_per_layer_input_norm", tensor_role::norm, h, 1});
    }
    m.layers.push_back(l);
  }
  if (ple > 0) {
    const std::int64_t vocab_ple = cfg.dim_or("vocab_size_per_layer_input", 262144, max_vocab);
    m.extras.push_back({"embed_tokens_per_layer", tensor_role::embedding, vocab_ple, layers * ple, 1, shard::column});
    m.extras.push_back({"per_layer_model_projection", tensor_role::other, layers * ple, h, 1, shard::column, true});
    m.extras.push_back({"per_layer_projection_norm", tensor_role::norm, ple, 1});
  }
  m.naming.moe = "";  // router and experts sit on the layer itself
  m.naming.router = "router.proj";
}

}  // namespace gpucal::model::arch
