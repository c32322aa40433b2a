// Step-3.7-Flash (transformers Step3p7TextConfig; vLLM step3p5.py for the
// text layers): GQA with q/k norms and a per-head output gate, sliding
// layers between full ones (layer_types), dense layers first, then MoE with
// a routing bias and a shared expert, and MTP layers that each keep their
// own output head.
#include <fmt/format.h>

#include "arch/family.hpp"

namespace gpucal::model::arch {

void step3p7_family(const config_view& v, model_spec& m) {
  const field_reader& cfg = v.cfg;
  const std::int64_t layers = read_base(v, m);
  attention_spec a = read_attention(cfg, m.hidden_size);
  if (cfg.has("num_attention_groups")) {  // Step's name for the KV heads
    a.num_kv_heads = cfg.dim("num_attention_groups", max_heads);
    if (a.num_heads % a.num_kv_heads != 0)
      cfg.fail("num_attention_groups", fmt::format("{} does not divide num_attention_heads {}", a.num_kv_heads, a.num_heads));
  }
  a.qk_norm = true;
  const bool head_gate = cfg.boolean_or("use_head_wise_attn_gate", true);  // Step3p7TextConfig: gating defaults on
  attention_spec sliding = a;
  sliding.window = attention_window::sliding;
  sliding.window_tokens = cfg.dim_or("sliding_window", 512, max_context);
  if (cfg.has("attention_other_setting")) {
    // The sliding layers' own query-head count (the published checkpoint has 96 there).
    const field_reader other = cfg.child("attention_other_setting");
    sliding.num_heads = other.dim_or("num_attention_heads", a.num_heads, max_heads);
    if (sliding.num_heads % sliding.num_kv_heads != 0)
      other.fail("num_attention_heads", fmt::format("{} is not a multiple of the {} KV heads", sliding.num_heads, sliding.num_kv_heads));
  }
  std::vector<bool> is_sliding(static_cast<std::size_t>(layers), false);
  if (cfg.has("layer_types")) {
    // Published configs list the MTP layers too; the first num_hidden_layers entries are the decoder's.
    const json& lt = cfg.array("layer_types");
    if (static_cast<std::int64_t>(lt.size()) < layers)
      cfg.fail("layer_types", fmt::format("must list at least one type per layer ({} layers)", layers));
    for (std::int64_t i = 0; i < layers; ++i) {
      const json& t = lt[static_cast<std::size_t>(i)];
      if (t != "sliding_attention" && t != "full_attention")
        cfg.fail("layer_types", fmt::format("entry {} is {} (allowed: sliding_attention, full_attention)", i, detail::shown(t)));
      is_sliding[static_cast<std::size_t>(i)] = t == "sliding_attention";
    }
  }
  moe_spec e = read_moe(cfg, cfg.has("num_experts") ? "num_experts" : "moe_num_experts", "num_experts_per_tok",
                        "moe_intermediate_size", 288, 8);
  e.shared_intermediate_size = cfg.count_or("share_expert_dim", 1280, max_width) * cfg.count_or("n_shared_experts", 1, 64);
  e.router_bias = cfg.boolean_or("use_moe_router_bias", true);
  // Step3p7TextConfig: layers from first_k_dense_replace on (default 3) are MoE.
  const std::int64_t first_moe = cfg.count_or("first_k_dense_replace", 3, layers);
  const std::int64_t dense = cfg.dim("intermediate_size", max_width);
  const auto with_gate = [&](layer_spec l) {
    if (head_gate)
      l.extras.push_back({"self_attn.g_proj", tensor_role::attention, l.attention.num_heads, m.hidden_size, 1, shard::column, true});
    return l;
  };
  for (std::int64_t i = 0; i < layers; ++i) {
    layer_spec l;
    l.mixer = mixer_kind::attention;
    l.attention = is_sliding[static_cast<std::size_t>(i)] ? sliding : a;
    if (i >= first_moe) {
      l.moe = e;
    } else {
      l.mlp = mlp_spec{dense};
    }
    m.layers.push_back(with_gate(l));
  }
  m.naming.moe = "moe";
  m.naming.shared_experts = "share_expert";
  // MTP (vLLM step3p5_mtp.py): sliding-window layers with a dense MLP, each with
  // enorm/hnorm/eh_proj and its own shared_head (norm and output head).
  const std::int64_t mtp = cfg.count_or("num_nextn_predict_layers", 0, 64);
  const std::int64_t h = m.hidden_size;
  for (std::int64_t k = 0; k < mtp; ++k) {
    layer_spec l;
    l.mixer = mixer_kind::attention;
    l.attention = sliding;
    l.mlp = mlp_spec{dense};
    l = with_gate(l);
    const auto join = mtp_join(h);
    l.extras.insert(l.extras.end(), join.begin(), join.end());
    l.extras.insert(l.extras.end(), {{"shared_head.norm", tensor_role::norm, h, 1},
                                     {"shared_head.output", tensor_role::lm_head, m.vocab_size, h, 1, shard::column}});
    m.mtp_layers.push_back(l);
  }
  if (mtp > 0)
    m.notes.push_back(fmt::format("{} multi-token-prediction layer(s) are stored but not loaded: vLLM loads them only for "
                                  "speculative decoding", mtp));
  if (!v.wrapped)
    m.notes.push_back("a flat Step-3.7 config without text_config/vision_config: the vision tower is not counted and "
                      "vLLM 0.33 serves Step-3.7 only as Step3p7ForConditionalGeneration");
}

}  // namespace gpucal::model::arch
