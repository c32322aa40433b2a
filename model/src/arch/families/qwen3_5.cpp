// Qwen3.5 and Qwen3.6 (transformers Qwen3_5TextConfig /
// Qwen3_5MoeTextConfig; vLLM qwen3_5.py): Gated DeltaNet linear-attention
// layers interleaved with gated full attention (3:1), a dense SwiGLU MLP or
// a MoE with one gated shared expert on every layer, one MTP layer, and
// the Qwen3-VL-style vision tower of the multimodal wrapper.
#include <fmt/format.h>

#include "arch/family.hpp"

namespace gpucal::model::arch {

void qwen3_5_family(const config_view& v, model_spec& m) {
  const field_reader& cfg = v.cfg;
  const bool moe = v.variant == "qwen3_5_moe";
  // Qwen3_5TextConfig / Qwen3_5MoeTextConfig defaults for omitted keys.
  const std::int64_t layers = read_base(v, m, arch_defaults([](base_defaults& d) { d.vocab_size = 248320; }));
  attention_spec a = read_attention(cfg, m.hidden_size);
  a.qk_norm = true;                                         // Qwen3_5Attention: q_norm, k_norm over head_dim
  a.output_gate = cfg.boolean_or("attn_output_gate", true);  // vLLM: getattr(config, "attn_output_gate", True)
  a.qkv_bias = cfg.boolean_or("attention_bias", false);

  linear_attention_spec g;
  g.kind = linear_attention_kind::gated_deltanet;
  g.num_k_heads = cfg.dim_or("linear_num_key_heads", 16, max_heads);
  g.num_v_heads = cfg.dim_or("linear_num_value_heads", 32, max_heads);
  g.head_k_dim = cfg.dim_or("linear_key_head_dim", 128, max_heads);
  g.head_v_dim = cfg.dim_or("linear_value_head_dim", 128, max_heads);
  g.conv_kernel = cfg.dim_or("linear_conv_kernel_dim", 4, 64);
  // The released checkpoints store A_log and the gated norm in fp32 (the 397B-A17B
  // header audit counts 90 FP32 tensors: 45 layers x 2).
  g.fp32_decay_and_norm = true;
  if (g.num_v_heads % g.num_k_heads != 0)
    cfg.fail("linear_num_value_heads", fmt::format("{} is not a multiple of linear_num_key_heads {}", g.num_v_heads, g.num_k_heads));
  // vLLM (Qwen3_5ForConditionalGenerationConfig) keeps the recurrent state in
  // mamba_ssm_dtype; without it, in the model dtype.
  g.state_dtype = cfg.has("mamba_ssm_dtype") ? parse_float_dtype(cfg.string("mamba_ssm_dtype"), cfg.where() + ": field 'mamba_ssm_dtype'")
                                             : m.torch_dtype;

  std::vector<bool> full(static_cast<std::size_t>(layers));
  if (const auto lt = read_layer_types(cfg, layers, {"linear_attention", "full_attention"})) {
    for (std::size_t i = 0; i < lt->size(); ++i) full[i] = (*lt)[i] == "full_attention";
  } else {
    // Qwen3_5TextConfig: every full_attention_interval-th layer (default 4) is full attention.
    const std::int64_t interval = cfg.dim_or("full_attention_interval", 4, max_layers);
    for (std::int64_t i = 0; i < layers; ++i) full[static_cast<std::size_t>(i)] = (i + 1) % interval == 0;
  }

  layer_spec ffn;
  if (moe) {
    moe_spec e = read_moe(cfg, "num_experts", "num_experts_per_tok", "moe_intermediate_size", 256, 8, 512);
    e.shared_intermediate_size = cfg.count_or("shared_expert_intermediate_size", 512, max_width);
    e.shared_expert_gate = e.shared_intermediate_size > 0;
    ffn.moe = e;
  } else {
    ffn.mlp = mlp_spec{cfg.dim("intermediate_size", max_width)};
  }
  for (std::int64_t i = 0; i < layers; ++i) {
    layer_spec l = ffn;
    if (full[static_cast<std::size_t>(i)]) {
      l.mixer = mixer_kind::attention;
      l.attention = a;
    } else {
      l.mixer = mixer_kind::linear_attention;
      l.linear = g;
    }
    m.layers.push_back(l);
  }
  m.naming.shared_experts = "shared_expert";  // Qwen3_5MoeSparseMoeBlock.shared_expert
  m.naming.mtp_layers = "mtp.layers";

  // MTP (vLLM qwen3_5_mtp.py): fc joining embedding and hidden state, two
  // pre-norms, full-attention decoder layers, a final norm; it shares the
  // target's embedding and LM head.
  const std::int64_t mtp = cfg.count_or("mtp_num_hidden_layers", 1, 64);
  for (std::int64_t k = 0; k < mtp; ++k) {
    layer_spec l = ffn;
    l.mixer = mixer_kind::attention;
    l.attention = a;
    if (k == 0) {
      const std::int64_t h = m.hidden_size;
      l.extras = {{"mtp.fc", tensor_role::mtp, h, 2 * h, 1, shard::column, true},
                  {"mtp.pre_fc_norm_hidden", tensor_role::norm, h, 1},
                  {"mtp.pre_fc_norm_embedding", tensor_role::norm, h, 1},
                  {"mtp.norm", tensor_role::norm, h, 1}};
    }
    m.mtp_layers.push_back(l);
  }
  if (mtp > 0)
    m.notes.push_back(fmt::format("{} multi-token-prediction layer(s) are stored but not loaded: vLLM loads them only "
                                  "for speculative decoding", mtp));
}

}  // namespace gpucal::model::arch
