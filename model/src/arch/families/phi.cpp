// Phi-2 (transformers PhiConfig, model_type "phi"): attention and a plain
// GELU MLP in parallel off one LayerNorm, biases on every projection and
// norm, and a biased LM head. Phi-3 reads as a Llama (families/llama.cpp).
#include "arch/family.hpp"

namespace gpucal::model::arch {

void phi_family(const config_view& v, model_spec& m) {
  const field_reader& cfg = v.cfg;
  // PhiConfig defaults for the keys a config may omit.
  const std::int64_t layers = read_base(v, m, arch_defaults([](base_defaults& d) { d.vocab_size = 51200; d.max_position_embeddings = 2048; }));
  attention_spec a = read_attention(cfg, m.hidden_size);
  a.qkv_bias = true;  // PhiAttention: q/k/v_proj and dense all carry a bias
  a.o_bias = true;
  m.layers = dense_layers(layers, a, cfg.dim("intermediate_size", max_width), 2);  // input_layernorm weight + bias
  for (auto& l : m.layers) {
    l.mlp->activation = mlp_activation::plain;  // fc1 -> gelu_new -> fc2
    l.mlp->bias = true;
    if (cfg.boolean_or("qk_layernorm", false)) l.attention.qk_norm = true;
  }
  m.final_norms = 2;  // final_layernorm weight + bias
  if (!m.tie_word_embeddings)
    m.extras.push_back({"lm_head.bias", tensor_role::bias, m.vocab_size, 1, 1, shard::column, false});
}

}  // namespace gpucal::model::arch
