// gpt-oss (transformers GptOssConfig; vLLM gpt_oss.py): MoE on every layer
// with biased experts and router, attention with biases and one learned sink
// logit per head, even layers over a 128-token sliding window, odd layers
// over the whole context. The checkpoint stores the experts in MXFP4.
#include <fmt/format.h>

#include "arch/family.hpp"

namespace gpucal::model::arch {

void gpt_oss_family(const config_view& v, model_spec& m) {
  const field_reader& cfg = v.cfg;
  // GptOssConfig defaults for omitted keys: vocab 201088, 36 layers, hidden 2880, ...
  const std::int64_t layers = read_base(v, m, arch_defaults([](base_defaults& d) { d.vocab_size = 201088; d.max_position_embeddings = 131072; }));
  attention_spec a = read_attention(cfg, m.hidden_size);
  a.qkv_bias = a.o_bias = cfg.boolean_or("attention_bias", true);
  a.sinks = true;
  moe_spec e = read_moe(cfg, "num_local_experts", "num_experts_per_tok", "intermediate_size", 128, 4, 2880);
  e.expert_bias = true;  // gate_up_proj_bias [E, 2I], down_proj_bias [E, H]
  e.router_bias = true;  // mlp.router.bias [E]
  layer_spec l;
  l.mixer = mixer_kind::attention;
  l.attention = a;
  l.moe = e;
  m.layers.assign(static_cast<std::size_t>(layers), l);
  m.naming.router = "router";
  // GptOssConfig: layer_types, else even layers slide. (vLLM's OAIAttention
  // slides on even layers whatever layer_types says; the released configs agree.)
  std::vector<bool> sliding(static_cast<std::size_t>(layers));
  if (const auto lt = read_layer_types(cfg, layers, {"sliding_attention", "full_attention"})) {
    for (std::size_t i = 0; i < lt->size(); ++i) sliding[i] = (*lt)[i] == "sliding_attention";
  } else {
    for (std::int64_t i = 0; i < layers; ++i) sliding[static_cast<std::size_t>(i)] = i % 2 == 0;
  }
  apply_sliding(m.layers, sliding, cfg.dim_or("sliding_window", 128, max_context));
}

}  // namespace gpucal::model::arch
