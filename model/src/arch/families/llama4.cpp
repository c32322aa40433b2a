// Llama 4 (transformers Llama4TextConfig; vLLM llama4.py / mllama4.py):
// MoE layers (one routed expert of num_local_experts plus a shared expert)
// every interleave_moe_layer_step layers, dense layers between them; RoPE
// layers attend within chunks of attention_chunk_size tokens, every fourth
// (NoPE) layer attends to the whole context.
#include <fmt/format.h>

#include "arch/family.hpp"

namespace gpucal::model::arch {

void llama4_family(const config_view& v, model_spec& m) {
  const field_reader& cfg = v.cfg;
  const std::int64_t layers = read_base(v, m, arch_defaults([](base_defaults& d) { d.vocab_size = 202048; }));
  attention_spec a = read_attention(cfg, m.hidden_size);
  a.qkv_bias = a.o_bias = cfg.boolean_or("attention_bias", false);  // use_qk_norm is an L2 norm without weights
  moe_spec e = read_moe(cfg, "num_local_experts", "num_experts_per_tok", "intermediate_size", 16, 1, 8192);
  e.shared_intermediate_size = e.expert_intermediate_size;  // Llama4TextMoe.shared_expert
  const std::int64_t step = cfg.dim_or("interleave_moe_layer_step", 1, max_layers);
  const std::int64_t dense_width = cfg.dim_or("intermediate_size_mlp", 16384, max_width);

  // no_rope_layers[i] == 1: the layer uses RoPE (and chunked attention); an
  // absent or empty list means every no_rope_layer_interval-th layer (4) is NoPE.
  std::vector<bool> rope(static_cast<std::size_t>(layers));
  std::vector<std::int64_t> given;
  if (cfg.has("no_rope_layers")) {
    const json& l = cfg.array("no_rope_layers");
    if (!l.empty() && static_cast<std::int64_t>(l.size()) != layers)
      cfg.fail("no_rope_layers", fmt::format("must list one flag per layer ({} layers)", layers));
    for (std::size_t i = 0; i < l.size(); ++i) {
      if (!l[i].is_number_integer() || (l[i] != 0 && l[i] != 1))
        cfg.fail("no_rope_layers", fmt::format("entry {} is {} (allowed: 0, 1)", i, detail::shown(l[i])));
      given.push_back(l[i].get<std::int64_t>());
    }
  }
  const std::int64_t interval = cfg.dim_or("no_rope_layer_interval", 4, max_layers);
  for (std::int64_t i = 0; i < layers; ++i)
    rope[static_cast<std::size_t>(i)] = given.empty() ? (i + 1) % interval != 0 : given[static_cast<std::size_t>(i)] == 1;
  const std::int64_t chunk = cfg.has("attention_chunk_size") ? cfg.dim("attention_chunk_size", max_context) : 0;

  for (std::int64_t i = 0; i < layers; ++i) {
    layer_spec l;
    l.mixer = mixer_kind::attention;
    l.attention = a;
    if (chunk > 0 && rope[static_cast<std::size_t>(i)]) {
      l.attention.window = attention_window::chunked;
      l.attention.window_tokens = chunk;
    }
    if ((i + 1) % step == 0) {
      l.moe = e;
    } else {
      l.mlp = mlp_spec{dense_width};
    }
    m.layers.push_back(l);
  }
  m.naming.mlp = m.naming.moe = "feed_forward";
  m.naming.router = "router";
  m.naming.shared_experts = "shared_expert";
}

}  // namespace gpucal::model::arch
