// DeepSeek-style decoders: multi-head latent attention and MoE with shared
// experts and a routing bias (transformers DeepseekV2Config, DeepseekV3Config;
// Kimi K2 and K2.5's text model use the DeepSeek-V3 layout). DeepSeek-V3.2
// and GLM-5 (glm_moe_dsa) add DeepSeek Sparse Attention: a lightning
// indexer with its own key cache per token.
#include <fmt/format.h>

#include "arch/family.hpp"

namespace gpucal::model::arch {

namespace {

// DeepSeek's multi-token-prediction module (checkpoint layers
// num_hidden_layers ... + n - 1): a decoder layer plus its own norms, the
// eh_proj that joins embedding and hidden state, and its own copies of the
// embedding and output head.
layer_spec mtp_layer(const layer_spec& decoder, std::int64_t hidden, std::int64_t vocab, bool own_embeddings) {
  layer_spec l = decoder;
  l.extras = mtp_join(hidden);
  l.extras.push_back({"shared_head.norm", tensor_role::norm, hidden, 1});
  if (own_embeddings) {
    l.extras.push_back({"embed_tokens", tensor_role::embedding, vocab, hidden, 1, shard::column});
    l.extras.push_back({"shared_head.head", tensor_role::lm_head, vocab, hidden, 1, shard::column});
  }
  return l;
}

}  // namespace

void deepseek_family(const config_view& v, model_spec& m) {
  const field_reader& cfg = v.cfg;
  const std::int64_t layers = read_base(v, m);
  mla_spec a = read_mla(cfg);
  if (v.variant == "deepseek_v32" || v.variant == "glm_moe_dsa") {
    sparse_indexer_spec x;
    x.num_heads = cfg.dim("index_n_heads", max_heads);
    x.head_dim = cfg.dim("index_head_dim", max_heads);
    x.topk = cfg.dim("index_topk", max_context);
    // vLLM's indexer cache (DeepseekV32IndexerCache): fp8 keys plus one fp32
    // scale per 128 values, per token and layer, whatever the KV dtype.
    x.cache_bytes_per_token = x.head_dim + (x.head_dim + 127) / 128 * 4;
    x.q_input_dim = a.q_lora_rank > 0 ? a.q_lora_rank : m.hidden_size;
    a.indexer = x;
  }

  moe_spec e = read_moe(cfg, "n_routed_experts", "num_experts_per_tok", "moe_intermediate_size");
  e.shared_intermediate_size = cfg.count_or("n_shared_experts", 0, max_experts) * e.expert_intermediate_size;
  e.router_bias = cfg.string_or("topk_method", "") == "noaux_tc";
  // DSA layers with their own indexer. GLM-5.2 (transformers GlmMoeDsaConfig,
  // vLLM DeepseekV32Attention) keeps one every index_topk_freq layers after
  // index_skip_topk_offset (or per index_topk_pattern, F/S); the others
  // reuse the previous indexer's top-k and store no indexer.
  std::vector<bool> own_indexer(static_cast<std::size_t>(layers), true);
  if (a.indexer) {
    if (cfg.has("index_topk_pattern")) {
      const std::string p = cfg.string("index_topk_pattern");
      if (static_cast<std::int64_t>(p.size()) != layers)
        cfg.fail("index_topk_pattern", fmt::format("must hold one letter (F or S) per layer ({} layers)", layers));
      for (std::size_t i = 0; i < p.size(); ++i) {
        if (p[i] != 'F' && p[i] != 'S') cfg.fail("index_topk_pattern", fmt::format("letter {} is '{}' (allowed: F, S)", i, p[i]));
        own_indexer[i] = p[i] == 'F';
      }
    } else {
      const std::int64_t freq = cfg.dim_or("index_topk_freq", 1, max_layers);
      const std::int64_t offset = cfg.count_or("index_skip_topk_offset", 2, max_layers);
      for (std::int64_t i = 0; i < layers; ++i)
        own_indexer[static_cast<std::size_t>(i)] = std::max<std::int64_t>(i - offset + 1, 0) % freq == 0;
    }
  }
  const std::int64_t first_dense = cfg.count_or("first_k_dense_replace", 0, layers);
  const std::int64_t freq = cfg.dim_or("moe_layer_freq", 1, max_layers);
  std::int64_t inter = 0;
  for (std::int64_t i = 0; i < layers; ++i) {
    layer_spec l;
    l.mixer = mixer_kind::mla;
    l.mla = a;
    if (a.indexer && !own_indexer[static_cast<std::size_t>(i)]) l.mla.shared_indexer = true;
    if (i >= first_dense && i % freq == 0) {
      l.moe = e;
    } else {
      if (inter == 0) inter = cfg.dim("intermediate_size", max_width);
      l.mlp = mlp_spec{inter};
    }
    m.layers.push_back(l);
  }
  const std::int64_t mtp = cfg.count_or("num_nextn_predict_layers", 0, 64);
  // DeepSeek's MTP layers store their own embedding and head; GLM-5's share the model's.
  const bool own_embeddings = v.variant != "glm_moe_dsa";
  layer_spec last = m.layers.back();
  last.mla = a;  // an MTP layer always has its own indexer
  for (std::int64_t k = 0; k < mtp; ++k) m.mtp_layers.push_back(mtp_layer(last, m.hidden_size, m.vocab_size, own_embeddings));
  if (mtp > 0)
    m.notes.push_back(fmt::format("{} multi-token-prediction layer(s) are stored but not loaded: vLLM loads them only for "
                                  "speculative decoding", mtp));
}

}  // namespace gpucal::model::arch
