// MiniMax-M2 (transformers MiniMaxM2Config; vLLM minimax_m2.py) and
// MiniMax-M3 (vLLM models/minimax_m3: MiniMaxM3TextConfig). M2: GQA with
// q/k RMSNorms over all heads of a layer and a routing-biased MoE on every
// layer. M3: per-head q/k norms, block-sparse attention with an index-key
// cache on the layers sparse_attention_freq marks, dense MLPs on the first
// layers, MoE with a shared expert after them, and MTP modules.
#include <fmt/format.h>

#include "arch/family.hpp"

namespace gpucal::model::arch {

namespace {

std::vector<bool> flags(const field_reader& r, const char* key, std::int64_t layers, bool fallback) {
  std::vector<bool> out(static_cast<std::size_t>(layers), fallback);
  if (!r.has(key)) return out;
  const json& l = r.raw(key);
  if (l.is_number_integer()) {  // a frequency, as DeepSeek's moe_layer_freq
    const std::int64_t f = r.dim(key, max_layers);
    for (std::int64_t i = 0; i < layers; ++i) out[static_cast<std::size_t>(i)] = i % f == 0;
    return out;
  }
  if (!l.is_array() || static_cast<std::int64_t>(l.size()) != layers)
    r.fail(key, fmt::format("must list one 0/1 flag per layer ({} layers)", layers));
  for (std::size_t i = 0; i < l.size(); ++i) {
    if (!l[i].is_number_integer() || l[i].get<std::int64_t>() < 0) r.fail(key, fmt::format("entry {} is {} (allowed: 0, 1)", i, detail::shown(l[i])));
    out[i] = l[i].get<std::int64_t>() != 0;
  }
  return out;
}

}  // namespace

void minimax_family(const config_view& v, model_spec& m) {
  const field_reader& cfg = v.cfg;
  const bool m3 = v.variant == "minimax_m3";
  const std::int64_t layers = read_base(v, m, arch_defaults([](base_defaults& d) { d.vocab_size = 200064; }));
  attention_spec a = read_attention(cfg, m.hidden_size);
  const bool qk_norm = cfg.boolean_or("use_qk_norm", true);
  const std::string norm_type = cfg.string_or("qk_norm_type", m3 ? "per_head" : "per_layer");
  std::vector<extra_tensor> qk_norms;
  if (qk_norm && norm_type == "per_head") {
    a.qk_norm = true;
  } else if (qk_norm) {
    // per_layer: one norm over all query heads and one over all key heads, split across TP ranks.
    qk_norms.push_back({"self_attn.q_norm", tensor_role::norm, a.num_heads * a.head_dim, 1, 1, shard::column});
    qk_norms.push_back({"self_attn.k_norm", tensor_role::norm, a.num_kv_heads * a.head_dim, 1, 1, shard::column});
  }
  moe_spec e = read_moe(cfg, "num_local_experts", "num_experts_per_tok", "intermediate_size", m3 ? 128 : 256, m3 ? 4 : 8,
                        m3 ? 3072 : 1536);
  e.router_bias = cfg.boolean_or("use_routing_bias", true);
  // vLLM sizes the shared expert intermediate_size x n_shared_experts (MiniMax-M3; M2 has none).
  e.shared_intermediate_size = cfg.count_or("shared_intermediate_size", 0, max_width) > 0
                                   ? e.expert_intermediate_size * cfg.count_or("n_shared_experts", 1, 64)
                                   : 0;

  std::vector<bool> sparse(static_cast<std::size_t>(layers), false);
  std::optional<sparse_indexer_spec> indexer;
  if (m3 && cfg.has("sparse_attention_config")) {
    const field_reader sc = cfg.child("sparse_attention_config");
    if (sc.boolean_or("use_sparse_attention", true)) {
      sparse = flags(sc, "sparse_attention_freq", layers, false);
      sparse_indexer_spec x;
      x.num_heads = sc.dim_or("sparse_num_index_heads", 4, max_heads);
      x.head_dim = sc.dim_or("sparse_index_dim", 128, max_heads);
      const std::int64_t block = sc.dim_or("sparse_block_size", 128, max_context);
      x.topk = sc.dim_or("sparse_topk_blocks", 16, max_context) * block;
      x.local_tokens = (sc.count_or("sparse_local_block", 1, 1024) + sc.count_or("sparse_init_block", 0, 1024)) * block;
      // MiniMaxM3IndexerCache: one head of sparse_index_dim in the model dtype per token (bf16 by default).
      x.cache_bytes_per_token = x.head_dim * static_cast<std::int64_t>(dtype_bits(m.torch_dtype) / 8);
      x.q_input_dim = m.hidden_size;
      indexer = x;
    }
  }
  const std::vector<bool> moe_layers = flags(cfg, "moe_layer_freq", layers, true);
  std::int64_t dense_width = 0;
  for (std::int64_t i = 0; i < layers; ++i) {
    layer_spec l;
    l.mixer = mixer_kind::attention;
    l.attention = a;
    if (sparse[static_cast<std::size_t>(i)]) l.attention.indexer = indexer;
    l.extras = qk_norms;
    if (moe_layers[static_cast<std::size_t>(i)]) {
      l.moe = e;
    } else {
      if (dense_width == 0) dense_width = cfg.dim(m3 ? "dense_intermediate_size" : "intermediate_size", max_width);
      l.mlp = mlp_spec{dense_width};
    }
    m.layers.push_back(l);
  }
  m.naming.moe = "block_sparse_moe";
  m.naming.mtp_layers = "model.mtp.layers";
  if (m3) {
    // MTP modules (vLLM MiniMaxM3MultiTokenPredictorLayer): norms and a projection
    // joining embedding and hidden state, a sparse-attention MoE layer, a final norm.
    const std::int64_t mtp = cfg.has("num_nextn_predict_layers") ? cfg.count_or("num_nextn_predict_layers", 0, 64)
                                                                  : cfg.count_or("num_mtp_modules", 0, 64);
    const std::int64_t h = m.hidden_size;
    for (std::int64_t k = 0; k < mtp; ++k) {
      layer_spec l;
      l.mixer = mixer_kind::attention;
      l.attention = a;
      l.attention.indexer = indexer;
      l.moe = e;
      l.extras = mtp_join(h);
      l.extras.push_back({"final_layernorm", tensor_role::norm, h, 1});
      m.mtp_layers.push_back(l);
    }
    if (mtp > 0)
      m.notes.push_back(fmt::format("{} MTP module(s) counted as stored (num_nextn_predict_layers, else num_mtp_modules) but "
                                    "not loaded: vLLM loads them only for speculative decoding", mtp));
  } else if (cfg.boolean_or("use_mtp", false)) {
    m.notes.push_back("the config declares MTP modules, but vLLM's MiniMax-M2 has none and drops them; none are counted");
  }
}

}  // namespace gpucal::model::arch
