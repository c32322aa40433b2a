// Tensor-by-tensor inventory of a decoder model, with vLLM's tensor-parallel
// layouts: column-parallel q/k/v, gate/up and MLA up-projections; row-parallel
// o_proj and down_proj; vocab-parallel embeddings and LM head; norms,
// routers and MLA down-projections replicated; experts split along their
// intermediate dimension (vLLM's default without expert parallelism).
#include "gpucal/model/tensor_inventory.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "gpucal/model/errors.hpp"
#include "gpucal/model/units.hpp"

namespace gpucal::model {

std::string_view tensor_role_name(tensor_role r) {
  switch (r) {
    case tensor_role::embedding: return "embedding";
    case tensor_role::lm_head: return "lm_head";
    case tensor_role::attention: return "attention";
    case tensor_role::mlp: return "mlp";
    case tensor_role::expert: return "experts";
    case tensor_role::shared_expert: return "shared_experts";
    case tensor_role::router: return "router";
    case tensor_role::norm: return "norms";
    case tensor_role::bias: return "biases";
  }
  return "?";
}

std::int64_t tensor_inventory::total_params() const {
  std::int64_t n = 0;
  for (const auto& g : groups) n += g.params();
  return n;
}

std::int64_t tensor_inventory::active_params() const {
  double n = 0;
  for (const auto& g : groups) n += static_cast<double>(g.params()) * g.active_fraction;
  return static_cast<std::int64_t>(n + 0.5);
}

std::int64_t kv_heads_per_rank(std::int64_t kv_heads, int tp) { return kv_heads >= tp ? kv_heads / tp : 1; }

void validate_tp(const model_spec& m, int tp) {
  if (tp <= 0) throw input_error(fmt::format("--tensor-parallel-size: {} must be a positive integer", tp));
  if (m.num_heads % tp != 0)
    throw input_error(fmt::format("--tensor-parallel-size: {} does not divide the {} attention heads of {} "
                                  "(allowed: a divisor of {})", tp, m.num_heads, m.name, m.num_heads));
  if (!m.mla && m.num_kv_heads % tp != 0 && tp % m.num_kv_heads != 0)
    throw input_error(fmt::format("--tensor-parallel-size: {} and the {} KV heads of {} must divide one another",
                                  tp, m.num_kv_heads, m.name));
}

namespace {

class inventory_builder {
public:
  explicit inventory_builder(int tp) { inv_.tp = tp; }

  // A weight of [rows, cols] split along rows (column-parallel) across tp.
  void column(std::string name, tensor_role role, std::int64_t count, std::int64_t rows, std::int64_t cols,
              std::int64_t rank_rows, bool linear = true, double active = 1) {
    add({std::move(name), role, count, rows, cols, rank_rows, cols, linear, active});
  }
  // A weight of [rows, cols] split along cols (row-parallel) across tp.
  void row(std::string name, tensor_role role, std::int64_t count, std::int64_t rows, std::int64_t cols,
           std::int64_t rank_cols, bool linear = true, double active = 1) {
    add({std::move(name), role, count, rows, cols, rows, rank_cols, linear, active});
  }
  void replicated(std::string name, tensor_role role, std::int64_t count, std::int64_t rows, std::int64_t cols,
                  bool linear = false) {
    add({std::move(name), role, count, rows, cols, rows, cols, linear, 1});
  }
  tensor_inventory take() { return std::move(inv_); }
  int tp() const { return inv_.tp; }

private:
  void add(tensor_group g) {
    if (g.count > 0 && g.rows > 0 && g.cols > 0) inv_.groups.push_back(std::move(g));
  }
  tensor_inventory inv_;
};

std::int64_t split(std::int64_t n, int tp) { return ceil_div(n, tp); }

void add_gqa_attention(inventory_builder& b, const model_spec& m, std::int64_t layers) {
  const int tp = b.tp();
  const std::int64_t h = m.hidden_size, hd = m.head_dim;
  const std::int64_t q = m.num_heads * hd, kv = m.num_kv_heads * hd;
  const std::int64_t kv_rank = kv_heads_per_rank(m.num_kv_heads, tp) * hd;
  b.column("layers.*.self_attn.q_proj.weight", tensor_role::attention, layers, q, h, q / tp);
  b.column("layers.*.self_attn.k_proj.weight", tensor_role::attention, layers, kv, h, kv_rank);
  b.column("layers.*.self_attn.v_proj.weight", tensor_role::attention, layers, kv, h, kv_rank);
  b.row("layers.*.self_attn.o_proj.weight", tensor_role::attention, layers, h, q, q / tp);
  if (m.qkv_bias) {
    b.column("layers.*.self_attn.q_proj.bias", tensor_role::bias, layers, q, 1, q / tp, false);
    b.column("layers.*.self_attn.k_proj.bias", tensor_role::bias, layers, kv, 1, kv_rank, false);
    b.column("layers.*.self_attn.v_proj.bias", tensor_role::bias, layers, kv, 1, kv_rank, false);
  }
  if (m.o_bias) b.replicated("layers.*.self_attn.o_proj.bias", tensor_role::bias, layers, h, 1);
  if (m.qk_norm) {
    b.replicated("layers.*.self_attn.q_norm.weight", tensor_role::norm, layers, hd, 1);
    b.replicated("layers.*.self_attn.k_norm.weight", tensor_role::norm, layers, hd, 1);
  }
}

// DeepSeek multi-head latent attention (vLLM DeepseekV2MLAAttention): the
// down-projections to the latents are replicated, the up-projections split by head.
void add_mla_attention(inventory_builder& b, const model_spec& m, std::int64_t layers) {
  const int tp = b.tp();
  const mla_spec& a = *m.mla;
  const std::int64_t h = m.hidden_size, heads = m.num_heads;
  const std::int64_t qk = a.qk_nope_head_dim + a.qk_rope_head_dim;
  if (a.q_lora_rank > 0) {
    b.replicated("layers.*.self_attn.q_a_proj.weight", tensor_role::attention, layers, a.q_lora_rank, h, true);
    b.replicated("layers.*.self_attn.q_a_layernorm.weight", tensor_role::norm, layers, a.q_lora_rank, 1);
    b.column("layers.*.self_attn.q_b_proj.weight", tensor_role::attention, layers, heads * qk, a.q_lora_rank, heads / tp * qk);
  } else {
    b.column("layers.*.self_attn.q_proj.weight", tensor_role::attention, layers, heads * qk, h, heads / tp * qk);
  }
  b.replicated("layers.*.self_attn.kv_a_proj_with_mqa.weight", tensor_role::attention, layers,
               a.kv_lora_rank + a.qk_rope_head_dim, h, true);
  b.replicated("layers.*.self_attn.kv_a_layernorm.weight", tensor_role::norm, layers, a.kv_lora_rank, 1);
  const std::int64_t kv_b = heads * (a.qk_nope_head_dim + a.v_head_dim);
  b.column("layers.*.self_attn.kv_b_proj.weight", tensor_role::attention, layers, kv_b, a.kv_lora_rank, kv_b / tp);
  b.row("layers.*.self_attn.o_proj.weight", tensor_role::attention, layers, h, heads * a.v_head_dim,
        heads / tp * a.v_head_dim);
}

// gate_proj, up_proj and down_proj of one SwiGLU MLP width `inter`, repeated `count` times.
void add_swiglu(inventory_builder& b, const model_spec& m, const std::string& prefix, tensor_role role,
                std::int64_t count, std::int64_t inter, double active) {
  const int tp = b.tp();
  const std::int64_t h = m.hidden_size;
  b.column(prefix + ".gate_proj.weight", role, count, inter, h, split(inter, tp), true, active);
  b.column(prefix + ".up_proj.weight", role, count, inter, h, split(inter, tp), true, active);
  b.row(prefix + ".down_proj.weight", role, count, h, inter, split(inter, tp), true, active);
  if (m.mlp_bias) {
    b.column(prefix + ".gate_proj.bias", tensor_role::bias, count, inter, 1, split(inter, tp), false, active);
    b.column(prefix + ".up_proj.bias", tensor_role::bias, count, inter, 1, split(inter, tp), false, active);
    b.replicated(prefix + ".down_proj.bias", tensor_role::bias, count, h, 1);
  }
}

}  // namespace

tensor_inventory build_inventory(const model_spec& m, int tp) {
  validate_tp(m, tp);
  inventory_builder b(tp);
  const std::int64_t h = m.hidden_size, layers = m.num_layers;
  const std::int64_t vocab_rank = split(ceil_div(m.vocab_size, vocab_padding) * vocab_padding, tp);

  b.column("embed_tokens.weight", tensor_role::embedding, 1, m.vocab_size, h, vocab_rank, false);
  if (m.mla) {
    add_mla_attention(b, m, layers);
  } else {
    add_gqa_attention(b, m, layers);
  }
  b.replicated("layers.*.norms", tensor_role::norm, layers * m.norms_per_layer, h, 1);

  std::int64_t moe_layers = 0;
  if (m.moe) moe_layers = std::count(m.moe->moe_layers.begin(), m.moe->moe_layers.end(), true);
  const std::int64_t dense_layers = layers - moe_layers;
  add_swiglu(b, m, "layers.*.mlp", tensor_role::mlp, dense_layers, m.intermediate_size, 1);
  if (m.moe && moe_layers > 0) {
    const moe_spec& e = *m.moe;
    const double active = static_cast<double>(e.experts_per_token) / static_cast<double>(e.num_experts);
    b.replicated("layers.*.mlp.gate.weight", tensor_role::router, moe_layers, e.num_experts, h);
    if (e.router_bias) b.replicated("layers.*.mlp.gate.e_score_correction_bias", tensor_role::router, moe_layers, e.num_experts, 1);
    add_swiglu(b, m, "layers.*.mlp.experts.*", tensor_role::expert, moe_layers * e.num_experts,
               e.expert_intermediate_size, active);
    if (e.shared_intermediate_size > 0)
      add_swiglu(b, m, "layers.*.mlp.shared_experts", tensor_role::shared_expert, moe_layers,
                 e.shared_intermediate_size, 1);
    if (e.shared_expert_gate) b.replicated("layers.*.mlp.shared_expert_gate.weight", tensor_role::router, moe_layers, 1, h);
  }
  b.replicated("norm.weight", tensor_role::norm, 1, h, 1);
  if (!m.tie_word_embeddings) b.column("lm_head.weight", tensor_role::lm_head, 1, m.vocab_size, h, vocab_rank, false);
  return b.take();
}

}  // namespace gpucal::model
