// MiMo-V2-Flash (transformers MiMoV2FlashConfig; vLLM mimo_v2.py, whose keys
// it reads): sliding-window layers (hybrid_layer_pattern 1) with their own
// head counts, head sizes and attention sinks, full layers between them, a
// dense first layer and routing-biased MoE after it, and three MTP layers.
#include <fmt/format.h>

#include "arch/family.hpp"

namespace gpucal::model::arch {

void mimo_v2_family(const config_view& v, model_spec& m) {
  const field_reader& cfg = v.cfg;
  const std::int64_t layers = read_base(v, m);
  attention_spec full = read_attention(cfg, m.hidden_size);
  full.v_head_dim = cfg.dim_or("v_head_dim", full.head_dim, max_heads);
  full.qkv_bias = full.o_bias = cfg.boolean_or("attention_bias", false);
  full.sinks = cfg.boolean_or("add_full_attention_sink_bias", false);
  attention_spec swa = full;
  swa.num_heads = cfg.dim_or("swa_num_attention_heads", full.num_heads, max_heads);
  swa.num_kv_heads = cfg.dim_or("swa_num_key_value_heads", 2 * full.num_kv_heads, max_heads);
  swa.head_dim = cfg.dim_or("swa_head_dim", full.head_dim, max_heads);
  swa.v_head_dim = cfg.dim_or("swa_v_head_dim", full.v_head_dim, max_heads);
  swa.sinks = cfg.boolean_or("add_swa_attention_sink_bias", true);
  swa.window = attention_window::sliding;
  swa.window_tokens = cfg.dim_or("sliding_window_size", cfg.dim_or("sliding_window", 128, max_context), max_context);
  if (swa.num_heads % swa.num_kv_heads != 0)
    cfg.fail("swa_num_key_value_heads", fmt::format("{} does not divide swa_num_attention_heads {}", swa.num_kv_heads, swa.num_heads));

  const auto list = [&](const char* key, auto fallback) {
    std::vector<bool> out(static_cast<std::size_t>(layers));
    if (!cfg.has(key)) {
      for (std::int64_t i = 0; i < layers; ++i) out[static_cast<std::size_t>(i)] = fallback(i);
      return out;
    }
    const json& l = cfg.raw(key);
    if (!l.is_array() || static_cast<std::int64_t>(l.size()) != layers)
      cfg.fail(key, fmt::format("must list one 0/1 flag per layer ({} layers)", layers));
    for (std::size_t i = 0; i < l.size(); ++i) {
      if (!l[i].is_number_integer() || (l[i] != 0 && l[i] != 1)) cfg.fail(key, fmt::format("entry {} is {} (allowed: 0, 1)", i, detail::shown(l[i])));
      out[i] = l[i] == 1;
    }
    return out;
  };
  // MiMoV2FlashConfig defaults: full attention at layer 0 and every sixth layer; MoE from layer 1.
  const std::vector<bool> sliding = list("hybrid_layer_pattern", [](std::int64_t i) { return !(i == 0 || (i + 1) % 6 == 0); });
  const std::vector<bool> moe_layers = list("moe_layer_freq", [](std::int64_t i) { return i > 0; });

  moe_spec e = read_moe(cfg, "n_routed_experts", "num_experts_per_tok", "moe_intermediate_size");
  e.shared_intermediate_size = cfg.count_or("n_shared_experts", 0, 64) * e.expert_intermediate_size;
  e.router_bias = cfg.string_or("topk_method", "") == "noaux_tc";
  std::int64_t dense = 0;
  for (std::int64_t i = 0; i < layers; ++i) {
    layer_spec l;
    l.mixer = mixer_kind::attention;
    l.attention = sliding[static_cast<std::size_t>(i)] ? swa : full;
    if (moe_layers[static_cast<std::size_t>(i)]) {
      l.moe = e;
    } else {
      if (dense == 0) dense = cfg.dim("intermediate_size", max_width);
      l.mlp = mlp_spec{dense};
    }
    m.layers.push_back(l);
  }
  m.naming.mtp_layers = "model.mtp.layers";
  // The config has no MTP count; the release ships three MTP layers (MiMo-V2-Flash
  // technical report; checkpoint tensors model.mtp.layers.0-2), each a sliding-window
  // layer with a dense MLP, enorm/hnorm, eh_proj and a final norm.
  const std::int64_t mtp = cfg.count_or("num_nextn_predict_layers", 3, 64);
  const std::int64_t h = m.hidden_size;
  for (std::int64_t k = 0; k < mtp; ++k) {
    layer_spec l;
    l.mixer = mixer_kind::attention;
    l.attention = swa;
    l.mlp = mlp_spec{cfg.dim("intermediate_size", max_width)};
    l.norms = 3;  // input_layernorm, pre_mlp_layernorm, final_layernorm
    l.extras = mtp_join(h);
    m.mtp_layers.push_back(l);
  }
  if (mtp > 0)
    m.notes.push_back(fmt::format("{} multi-token-prediction layer(s) are stored but not loaded: vLLM loads them only for "
                                  "speculative decoding", mtp));
}

}  // namespace gpucal::model::arch
