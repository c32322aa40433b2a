// Llama-3.x-Nemotron NAS models (DeciLM, model_type "nemotron-nas"; vLLM
// nemotron_nas.py): a Llama decoder whose blocks each carry their own
// attention (GQA with num_attention_heads / n_heads_in_group KV heads, or
// none) and FFN (a SwiGLU width from ffn_mult, or none), from block_configs.
#include <fmt/format.h>

#include "arch/family.hpp"

namespace gpucal::model::arch {

void nemotron_nas_family(const config_view& v, model_spec& m) {
  const field_reader& cfg = v.cfg;
  const std::int64_t layers = read_base(v, m);
  const std::int64_t heads = cfg.dim("num_attention_heads", max_heads);
  if (m.hidden_size % heads != 0)
    cfg.fail("num_attention_heads", fmt::format("{} does not divide hidden_size {}", heads, m.hidden_size));
  const json& blocks = cfg.array("block_configs");
  if (static_cast<std::int64_t>(blocks.size()) != layers)
    cfg.fail("block_configs", fmt::format("must hold one entry per layer ({} layers), got {}", layers, blocks.size()));
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    const field_reader b(blocks[i], fmt::format("{}.block_configs[{}]", cfg.where(), i));
    const field_reader att = b.child("attention"), ffn = b.child("ffn");
    layer_spec l;
    l.norms = 0;
    if (att.boolean_or("replace_with_linear", false) || ffn.boolean_or("replace_with_linear", false))
      b.fail("attention", "or ffn uses replace_with_linear, which vLLM does not serve (nemotron_nas.py builds GQA and SwiGLU only)");
    if (!att.boolean_or("no_op", false)) {
      l.mixer = mixer_kind::attention;
      l.attention.num_heads = heads;
      const std::int64_t group = att.dim("n_heads_in_group", heads);
      if (heads % group != 0) att.fail("n_heads_in_group", fmt::format("{} does not divide num_attention_heads {}", group, heads));
      l.attention.num_kv_heads = heads / group;
      l.attention.head_dim = l.attention.v_head_dim = m.hidden_size / heads;
      l.attention.qkv_bias = l.attention.o_bias = cfg.boolean_or("attention_bias", false);
      l.norms += 1;  // input_layernorm
    }
    if (!ffn.boolean_or("no_op", false)) {
      std::int64_t inter = 0;
      if (ffn.has("intermediate_size")) {
        inter = ffn.dim("intermediate_size", max_width);
      } else {
        // vLLM _ffn_mult_to_intermediate_size: int(2 * ffn_mult * hidden / 3), rounded up to a multiple of 256.
        const double mult = ffn.number_in("ffn_mult", 0.01, 1000);
        const auto raw = static_cast<std::int64_t>(2.0 * mult * static_cast<double>(m.hidden_size) / 3.0);
        inter = (raw + 255) / 256 * 256;
        if (inter <= 0 || inter > max_width) ffn.fail("ffn_mult", fmt::format("{:g} gives an FFN width of {}", mult, inter));
      }
      l.mlp = mlp_spec{inter, mlp_activation::gated, cfg.boolean_or("mlp_bias", false)};
      l.norms += 1;  // post_attention_layernorm
    }
    m.layers.push_back(l);
  }
}

}  // namespace gpucal::model::arch
