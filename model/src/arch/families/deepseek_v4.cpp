// DeepSeek-V4 (transformers DeepseekV4Config; vLLM models/deepseek_v4):
// compressed MLA on every layer (window only, compressed sparse with an
// indexer every 4 tokens, or heavily compressed every 128, per
// compress_ratios), hyper-connections holding hc_mult copies of the
// residual, MoE on every layer (hash routing on the first num_hash_layers),
// and one MTP layer. The checkpoint keeps DeepSeek's own tensor names.
#include <fmt/format.h>

#include "arch/family.hpp"

namespace gpucal::model::arch {

void deepseek_v4_family(const config_view& v, model_spec& m) {
  const field_reader& cfg = v.cfg;
  const std::int64_t layers = read_base(v, m);
  compressed_mla_spec a;
  a.num_heads = cfg.dim("num_attention_heads", max_heads);
  a.head_dim = cfg.dim("head_dim", max_heads);
  a.rope_dim = cfg.dim_or("qk_rope_head_dim", 64, max_heads);
  a.q_lora_rank = cfg.dim("q_lora_rank", max_width);
  a.o_lora_rank = cfg.dim("o_lora_rank", max_width);
  a.o_groups = cfg.dim("o_groups", max_heads);
  if (a.num_heads % a.o_groups != 0)
    cfg.fail("o_groups", fmt::format("{} does not divide num_attention_heads {}", a.o_groups, a.num_heads));
  a.window = cfg.dim_or("sliding_window", 128, max_context);
  a.hc_mult = static_cast<std::int64_t>(cfg.dim_or("hc_mult", 4, 64));
  sparse_indexer_spec x;
  x.num_heads = cfg.dim("index_n_heads", max_heads);
  x.head_dim = cfg.dim("index_head_dim", max_heads);
  x.topk = cfg.dim("index_topk", max_context);
  x.cache_bytes_per_token = x.head_dim + (x.head_dim + 127) / 128 * 4;  // fp8 keys + an fp32 scale per 128
  x.q_input_dim = a.q_lora_rank;

  // compress_ratios: one per layer plus one for the MTP layer (0 = window only, 4, 128).
  std::vector<std::int64_t> ratios;
  if (cfg.has("compress_ratios")) {
    const json& r = cfg.array("compress_ratios");
    if (static_cast<std::int64_t>(r.size()) < layers)
      cfg.fail("compress_ratios", fmt::format("must list a ratio per layer ({} layers), got {}", layers, r.size()));
    for (std::size_t i = 0; i < r.size(); ++i) {
      if (!r[i].is_number_integer() || (r[i] != 0 && r[i] != 4 && r[i] != 128))
        cfg.fail("compress_ratios", fmt::format("entry {} is {} (allowed: 0, 4, 128)", i, detail::shown(r[i])));
      ratios.push_back(r[i].get<std::int64_t>());
    }
  } else {
    // DeepseekV4Config default: two heavily compressed layers, then alternating heavy / sparse.
    for (std::int64_t i = 0; i < layers; ++i) ratios.push_back(i < 2 || i % 2 == 1 ? 128 : 4);
  }

  moe_spec e = read_moe(cfg, "n_routed_experts", "num_experts_per_tok", "moe_intermediate_size");
  e.shared_intermediate_size = cfg.count_or("n_shared_experts", 1, 64) * e.expert_intermediate_size;
  const std::int64_t hash_layers = cfg.count_or("num_hash_layers", 3, layers);
  const std::int64_t h = m.hidden_size, hc = a.hc_mult, mix = (2 + hc) * hc;
  // Hyper-connections (fp32): a mixing matrix, base and scale before attention and before the FFN.
  const std::vector<extra_tensor> hyper = {{"hc_attn_fn", tensor_role::other, mix, hc * h}, {"hc_ffn_fn", tensor_role::other, mix, hc * h},
                                           {"hc_attn_base", tensor_role::other, mix, 1}, {"hc_ffn_base", tensor_role::other, mix, 1},
                                           {"hc_attn_scale", tensor_role::other, 3, 1}, {"hc_ffn_scale", tensor_role::other, 3, 1}};
  const auto layer_at = [&](std::int64_t ratio, bool hash) {
    layer_spec l;
    l.mixer = mixer_kind::compressed_mla;
    l.compressed = a;
    l.compressed.compress_ratio = ratio;
    if (ratio == 4) l.compressed.indexer = x;
    l.moe = e;
    l.moe->router_bias = !hash;  // hash-routed layers map tokens to experts by a table (tid2eid, integers, not counted)
    l.extras = hyper;
    return l;
  };
  for (std::int64_t i = 0; i < layers; ++i) m.layers.push_back(layer_at(ratios[static_cast<std::size_t>(i)], i < hash_layers));
  m.extras = {{"hc_head_fn", tensor_role::other, hc, hc * h}, {"hc_head_base", tensor_role::other, hc, 1},
              {"hc_head_scale", tensor_role::other, 1, 1}};
  m.naming.layers = "layers";
  m.naming.attention = "attn";
  m.naming.moe = "ffn";
  m.naming.experts = "experts";
  m.naming.shared_experts = "shared_experts";
  m.naming.mtp_layers = "mtp";
  // MTP (vLLM nvidia/mtp.py DeepSeekV4MTP): a window-only layer with normal
  // routing plus e_proj, h_proj, three norms and its own hyper-connection head.
  const std::int64_t mtp = cfg.count_or("num_nextn_predict_layers", 1, 64);
  for (std::int64_t k = 0; k < mtp; ++k) {
    layer_spec l = layer_at(0, false);
    l.extras.insert(l.extras.end(), {{"e_proj", tensor_role::mtp, h, h, 1, shard::replicated, true},
                                     {"h_proj", tensor_role::mtp, h, h, 1, shard::replicated, true},
                                     {"enorm", tensor_role::norm, h, 1}, {"hnorm", tensor_role::norm, h, 1}, {"norm", tensor_role::norm, h, 1},
                                     {"hc_head_fn", tensor_role::other, hc, hc * h}, {"hc_head_base", tensor_role::other, hc, 1},
                                     {"hc_head_scale", tensor_role::other, 1, 1}});
    m.mtp_layers.push_back(l);
  }
  if (mtp > 0)
    m.notes.push_back(fmt::format("{} multi-token-prediction layer(s) are stored but not loaded: vLLM loads them only for "
                                  "speculative decoding", mtp));
  m.notes.push_back("DeepSeek-V4's KV cache is modelled as compressed entries that grow with the context plus a fixed part per "
                    "request (windows and compressor states); vLLM packs both into 256-token blocks in its own layout");
}

}  // namespace gpucal::model::arch
