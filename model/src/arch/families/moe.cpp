// Mixture-of-experts decoders with GQA attention: Mixtral (MixtralConfig),
// Qwen2-MoE and Qwen3-MoE (Qwen2MoeConfig, Qwen3MoeConfig; also the text
// model of Qwen3-VL-MoE).
#include <fmt/format.h>

#include <set>

#include "arch/family.hpp"

namespace gpucal::model::arch {

void mixtral_family(const config_view& v, model_spec& m) {
  const field_reader& cfg = v.cfg;
  const std::int64_t layers = read_base(v, m);
  attention_spec a = read_attention(cfg, m.hidden_size);
  const moe_spec e = read_moe(cfg, "num_local_experts", "num_experts_per_tok", "intermediate_size");
  layer_spec l;
  l.mixer = mixer_kind::attention;
  l.attention = a;
  l.moe = e;
  m.layers.assign(static_cast<std::size_t>(layers), l);
  // MixtralConfig: a non-null sliding_window applies to every layer.
  if (cfg.has("sliding_window"))
    apply_sliding(m.layers, std::vector<bool>(static_cast<std::size_t>(layers), true), cfg.dim("sliding_window", max_context));
}

void qwen_moe_family(const config_view& v, model_spec& m) {
  const field_reader& cfg = v.cfg;
  const std::int64_t layers = read_base(v, m);
  const bool qwen2 = v.variant == "qwen2_moe";
  attention_spec a = read_attention(cfg, m.hidden_size);
  a.qkv_bias = qwen2 || cfg.boolean_or("attention_bias", false);  // Qwen2MoeAttention: q/k/v always carry a bias
  a.qk_norm = !qwen2;                                                  // Qwen3MoeAttention: per-head q/k RMSNorm
  moe_spec e = read_moe(cfg, "num_experts", "num_experts_per_tok", "moe_intermediate_size");
  if (qwen2) {
    e.shared_intermediate_size = cfg.count_or("shared_expert_intermediate_size", 0, max_width);
    e.shared_expert_gate = e.shared_intermediate_size > 0;
  }
  const std::int64_t step = cfg.dim_or("decoder_sparse_step", 1, max_layers);
  const std::vector<std::int64_t> mlp_only = read_layer_indices(cfg, "mlp_only_layers", layers);
  const std::set<std::int64_t> dense(mlp_only.begin(), mlp_only.end());
  std::int64_t inter = 0;
  for (std::int64_t i = 0; i < layers; ++i) {
    layer_spec l;
    l.mixer = mixer_kind::attention;
    l.attention = a;
    if (!dense.contains(i) && (i + 1) % step == 0) {
      l.moe = e;
    } else {
      if (inter == 0) inter = cfg.dim("intermediate_size", max_width);
      l.mlp = mlp_spec{inter};
    }
    m.layers.push_back(l);
  }
  m.naming.shared_experts = "shared_expert";  // Qwen2MoeSparseMoeBlock.shared_expert
}

}  // namespace gpucal::model::arch
