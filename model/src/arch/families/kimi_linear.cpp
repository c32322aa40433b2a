// Kimi Linear and Kimi K3's text model (vLLM transformers_utils/configs
// kimi_linear.py and models/kimi_k3): Kimi Delta Attention layers listed in
// linear_attn_config.kda_layers (1-indexed), MLA everywhere else (with an
// optional output gate), dense layers before first_k_dense_replace, then MoE
// whose routed experts may work in a latent (routed_expert_hidden_size),
// and attention-residual weights when attn_res_block_size is set.
#include <fmt/format.h>

#include <set>

#include "arch/family.hpp"

namespace gpucal::model::arch {

void kimi_linear_family(const config_view& v, model_spec& m) {
  const field_reader& cfg = v.cfg;
  const std::int64_t layers = read_base(v, m);
  const field_reader la = cfg.child("linear_attn_config");
  linear_attention_spec k;
  k.kind = linear_attention_kind::kimi_delta;
  k.num_k_heads = k.num_v_heads = la.dim("num_heads", max_heads);
  k.head_k_dim = k.head_v_dim = la.dim("head_dim", max_heads);
  k.conv_kernel = la.dim_or("short_conv_kernel_size", 4, 64);
  k.full_rank_gate = la.boolean_or("use_full_rank_gate", false);
  k.state_dtype = dtype::float32;  // vLLM kda_state_dtype: fp32 recurrent state unless set otherwise
  std::set<std::int64_t> kda;
  for (const auto& x : la.array("kda_layers")) {
    if (!x.is_number_integer() || x.get<std::int64_t>() < 1 || x.get<std::int64_t>() > layers)
      la.fail("kda_layers", fmt::format("has {} (allowed: layer numbers 1..{}, 1-indexed)", detail::shown(x), layers));
    kda.insert(x.get<std::int64_t>());
  }

  mla_spec a = read_mla(cfg);
  a.output_gate = cfg.boolean_or("mla_use_output_gate", false);

  std::optional<moe_spec> moe;
  if (cfg.has("num_experts")) {
    moe_spec e = read_moe(cfg, "num_experts", cfg.has("num_experts_per_token") ? "num_experts_per_token" : "num_experts_per_tok",
                          "moe_intermediate_size");
    e.shared_intermediate_size = cfg.count_or("num_shared_experts", 0, 64) * e.expert_intermediate_size;
    e.router_bias = cfg.string_or("topk_method", "") == "noaux_tc" || cfg.boolean_or("use_grouped_topk", false);
    e.latent_size = cfg.count_or("routed_expert_hidden_size", 0, max_width);
    e.latent_norm = e.latent_size > 0 && cfg.boolean_or("latent_moe_use_norm", false);
    moe = e;
  }
  const std::int64_t first_dense = cfg.count_or("first_k_dense_replace", 0, layers);
  const std::int64_t freq = cfg.dim_or("moe_layer_freq", 1, max_layers);
  const bool attn_res = cfg.has("attn_res_block_size");
  const std::int64_t h = m.hidden_size;
  std::int64_t dense = 0;
  for (std::int64_t i = 0; i < layers; ++i) {
    layer_spec l;
    if (kda.contains(i + 1)) {
      l.mixer = mixer_kind::linear_attention;
      l.linear = k;
    } else {
      l.mixer = mixer_kind::mla;
      l.mla = a;
    }
    if (moe && i >= first_dense && i % freq == 0) {
      l.moe = moe;
    } else {
      if (dense == 0) dense = cfg.dim("intermediate_size", max_width);
      l.mlp = mlp_spec{dense};
    }
    if (attn_res)
      l.extras = {{"self_attention_res_norm", tensor_role::norm, h, 1}, {"mlp_res_norm", tensor_role::norm, h, 1},
                  {"self_attention_res_proj", tensor_role::other, 1, h}, {"mlp_res_proj", tensor_role::other, 1, h}};
    m.layers.push_back(l);
  }
  if (attn_res)
    m.extras = {{"output_attn_res_norm", tensor_role::norm, h, 1}, {"output_attn_res_proj", tensor_role::other, 1, h}};
  m.naming.attention = m.naming.linear_attention = "self_attn";
  m.naming.moe = "block_sparse_moe";
  if (cfg.count_or("num_nextn_predict_layers", 0, 64) > 0)
    m.notes.push_back("num_nextn_predict_layers > 0: Kimi's MTP layers are not counted");
}

}  // namespace gpucal::model::arch
