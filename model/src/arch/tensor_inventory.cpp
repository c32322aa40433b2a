// Tensor-by-tensor inventory of a decoder model, built from its layer kinds,
// with vLLM's tensor-parallel layouts: column-parallel q/k/v, gate/up, MLA
// up-projections and linear-attention/Mamba input projections; row-parallel
// o_proj, down_proj and output projections; vocab-parallel embeddings and LM
// head; norms, routers and MLA down-projections replicated; experts split
// along their intermediate dimension (vLLM's default without expert
// parallelism). Tensors are emitted layer by layer under their checkpoint
// module names and merged where layers repeat.
#include "gpucal/model/tensor_inventory.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <tuple>

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
    case tensor_role::linear_attention: return "linear_attention";
    case tensor_role::mamba: return "mamba";
    case tensor_role::indexer: return "indexer";
    case tensor_role::vision: return "vision";
    case tensor_role::mtp: return "mtp";
    case tensor_role::other: return "other";
  }
  return "?";
}

std::string_view layer_spec::mixer_name() const {
  switch (mixer) {
    case mixer_kind::none: return "none";
    case mixer_kind::attention:
      return attention.window == attention_window::sliding   ? "sliding_attention"
             : attention.window == attention_window::chunked ? "chunked_attention"
                                                             : "attention";
    case mixer_kind::mla: return mla.indexer ? "dsa" : "mla";
    case mixer_kind::linear_attention: return linear.kind == linear_attention_kind::kimi_delta ? "kda" : "gated_deltanet";
    case mixer_kind::mamba2: return "mamba2";
    case mixer_kind::compressed_mla:
      return compressed.compress_ratio == 0 ? "swa_mla" : compressed.indexer ? "csa" : "hca";
  }
  return "?";
}

std::int64_t model_spec::count(mixer_kind k) const {
  return std::count_if(layers.begin(), layers.end(), [k](const layer_spec& l) { return l.mixer == k; });
}

std::int64_t model_spec::num_moe_layers() const {
  return std::count_if(layers.begin(), layers.end(), [](const layer_spec& l) { return l.moe.has_value(); });
}

const layer_spec* model_spec::first(mixer_kind k) const {
  for (const auto& l : layers)
    if (l.mixer == k) return &l;
  return nullptr;
}

std::int64_t model_spec::max_heads() const {
  std::int64_t h = 0;
  for (const auto& l : layers) {
    switch (l.mixer) {
      case mixer_kind::attention: h = std::max(h, l.attention.num_heads); break;
      case mixer_kind::mla: h = std::max(h, l.mla.num_heads); break;
      case mixer_kind::linear_attention: h = std::max(h, l.linear.num_v_heads); break;
      case mixer_kind::mamba2: h = std::max(h, l.mamba.num_heads); break;
      case mixer_kind::compressed_mla: h = std::max(h, l.compressed.num_heads); break;
      case mixer_kind::none: break;
    }
  }
  return h;
}

std::int64_t tensor_group::per_layer() const {
  return layer_ids.empty() ? count : count / static_cast<std::int64_t>(layer_ids.size());
}

std::int64_t tensor_inventory::total_params() const {
  std::int64_t n = 0;
  for (const auto& g : groups)
    if (g.loaded) n += g.params();
  return n;
}

std::int64_t tensor_inventory::checkpoint_params() const {
  std::int64_t n = 0;
  for (const auto& g : groups)
    if (g.stored) n += g.params();
  return n;
}

std::int64_t tensor_inventory::active_params() const {
  double n = 0;
  for (const auto& g : groups)
    if (g.loaded && g.role != tensor_role::vision) n += static_cast<double>(g.params()) * g.active_fraction;
  return static_cast<std::int64_t>(n + 0.5);
}

std::int64_t kv_heads_per_rank(std::int64_t kv_heads, int tp) { return kv_heads >= tp ? kv_heads / tp : 1; }

void validate_tp(const model_spec& m, int tp) {
  if (tp <= 0) throw input_error(fmt::format("--tensor-parallel-size: {} must be a positive integer", tp));
  const auto refuse = [&](std::int64_t heads, const char* what) {
    throw input_error(fmt::format("--tensor-parallel-size: {} does not divide the {} {} of {} (allowed: a divisor of {})",
                                  tp, heads, what, m.name, heads));
  };
  for (const auto& l : m.layers) {
    switch (l.mixer) {
      case mixer_kind::attention: {
        const attention_spec& a = l.attention;
        if (a.num_heads % tp != 0) refuse(a.num_heads, "attention heads");
        if (a.num_kv_heads % tp != 0 && tp % a.num_kv_heads != 0)
          throw input_error(fmt::format("--tensor-parallel-size: {} and the {} KV heads of {} must divide one another",
                                        tp, a.num_kv_heads, m.name));
        break;
      }
      case mixer_kind::mla:
        if (l.mla.num_heads % tp != 0) refuse(l.mla.num_heads, "attention heads");
        break;
      case mixer_kind::linear_attention:
        if (l.linear.num_v_heads % tp != 0) refuse(l.linear.num_v_heads, "linear-attention value heads");
        if (l.linear.num_k_heads % tp != 0) refuse(l.linear.num_k_heads, "linear-attention key heads");
        break;
      case mixer_kind::compressed_mla:
        if (l.compressed.num_heads % tp != 0) refuse(l.compressed.num_heads, "attention heads");
        if (l.compressed.o_groups % tp != 0) refuse(l.compressed.o_groups, "output groups (o_groups)");
        break;
      case mixer_kind::mamba2:
        if (l.mamba.num_heads % tp != 0) refuse(l.mamba.num_heads, "Mamba heads");
        if (l.mamba.n_groups % tp != 0 && tp % l.mamba.n_groups != 0)
          throw input_error(fmt::format("--tensor-parallel-size: {} and the {} Mamba groups of {} must divide one another",
                                        tp, l.mamba.n_groups, m.name));
        break;
      case mixer_kind::none: break;
    }
  }
}

namespace {

std::int64_t split(std::int64_t n, int tp) { return ceil_div(n, tp); }

// One tensor of one layer (or of the model), before layers are merged.
struct tensor {
  std::string module;  // "model.layers.{i}.self_attn.q_proj"
  std::string param = "weight";
  tensor_role role = tensor_role::other;
  std::int64_t instances = 1;  // experts
  std::int64_t rows = 0, cols = 1, rank_rows = 0, rank_cols = 1;
  bool linear = false;
  double active = 1;
  bool stored = true;
  std::optional<dtype> fixed_dtype = std::nullopt;
};

class inventory_builder {
public:
  explicit inventory_builder(int tp) : tp_(tp) { inv_.tp = tp; }
  int tp() const { return tp_; }

  // The layers (indices, stored-only flag) that following tensors belong to; none for model-level tensors.
  void at_layers(std::vector<std::int64_t> layers, bool loaded) {
    layers_ = std::move(layers);
    loaded_ = loaded;
  }

  // A weight of [rows, cols] split along rows (column-parallel) into `rank_rows` rows per GPU.
  void column(const std::string& module, tensor_role role, std::int64_t rows, std::int64_t cols, std::int64_t rank_rows,
              bool linear = true, std::int64_t instances = 1, double active = 1, const char* param = "weight") {
    add({module, param, role, instances, rows, cols, rank_rows, cols, linear, active});
  }
  // A weight of [rows, cols] split along cols (row-parallel) into `rank_cols` columns per GPU.
  void row(const std::string& module, tensor_role role, std::int64_t rows, std::int64_t cols, std::int64_t rank_cols,
           bool linear = true, std::int64_t instances = 1, double active = 1, const char* param = "weight") {
    add({module, param, role, instances, rows, cols, rows, rank_cols, linear, active});
  }
  void replicated(const std::string& module, tensor_role role, std::int64_t rows, std::int64_t cols = 1,
                  bool linear = false, std::int64_t instances = 1, double active = 1, const char* param = "weight") {
    add({module, param, role, instances, rows, cols, rows, cols, linear, active});
  }
  // A vector split by head across tp, stored in `type` whatever the model dtype.
  void fixed(const std::string& module, tensor_role role, std::int64_t rows, std::int64_t rank_rows, dtype type,
             const char* param) {
    tensor t{module, param, role, 1, rows, 1, rank_rows, 1, false, 1};
    t.fixed_dtype = type;
    add(t);
  }
  void extra(const std::string& prefix, const extra_tensor& e) {
    const bool absolute = e.name.starts_with("model.") || e.name.starts_with("lm_head") || e.name.starts_with("mtp.");
    const std::string module = absolute ? e.name : prefix + e.name;
    tensor t{module, "", e.role, e.count, e.rows, e.cols, e.rows, e.cols, e.linear, 1, e.stored};
    if (e.split == shard::column) t.rank_rows = split(e.rows, tp_);
    if (e.split == shard::row) t.rank_cols = split(e.cols, tp_);
    add(t);
  }

  tensor_inventory take() { return std::move(inv_); }

private:
  void add(tensor t) {
    if (t.instances <= 0 || t.rows <= 0 || t.cols <= 0) return;
    // Checked once here, so params() and the sums over groups cannot overflow later.
    const std::int64_t per_instance = checked_mul(t.rows, t.cols, "a tensor's parameter count");
    const auto copies = std::max<std::int64_t>(1, static_cast<std::int64_t>(layers_.size()));
    t.instances = checked_mul(t.instances, copies, "a tensor's parameter count");
    const std::int64_t params = checked_mul(per_instance, t.instances, "a tensor's parameter count");
    total_ = checked_add(total_, params, "the model's parameter count");
    const auto key = std::make_tuple(t.module, t.param, static_cast<int>(t.role), t.instances, t.rows, t.cols, t.rank_rows,
                                     t.rank_cols, t.linear, t.active, loaded_, t.stored, t.fixed_dtype ? static_cast<int>(*t.fixed_dtype) : -1);
    const auto it = index_.find(key);
    if (it != index_.end()) {
      tensor_group& g = inv_.groups[it->second];
      g.count += t.instances;
      g.layer_ids.insert(g.layer_ids.end(), layers_.begin(), layers_.end());
      return;
    }
    tensor_group g;
    g.name = display_name(t.module, t.param);
    g.role = t.role;
    g.count = t.instances;
    g.rows = t.rows;
    g.cols = t.cols;
    g.rank_rows = t.rank_rows;
    g.rank_cols = t.rank_cols;
    g.linear = t.linear;
    g.active_fraction = t.active;
    g.loaded = loaded_;
    g.stored = t.stored;
    g.fixed_dtype = t.fixed_dtype;
    g.module = t.module;
    g.layer_ids = layers_;
    index_.emplace(key, inv_.groups.size());
    inv_.groups.push_back(std::move(g));
  }

  // "model.layers.{i}.self_attn.q_proj" + "weight" -> "layers.*.self_attn.q_proj.weight"
  static std::string display_name(const std::string& module, const std::string& param) {
    std::string n = module.starts_with("model.") ? module.substr(6) : module;
    const auto at = n.find("{i}");
    if (at != std::string::npos) n = n.substr(0, at) + "*" + n.substr(at + 3);  // (not replace(): GCC 12's -Wrestrict misfires on it)
    return param.empty() ? n : n + "." + param;
  }

  int tp_;
  std::vector<std::int64_t> layers_;
  bool loaded_ = true;
  std::int64_t total_ = 0;
  tensor_inventory inv_;
  std::map<std::tuple<std::string, std::string, int, std::int64_t, std::int64_t, std::int64_t, std::int64_t, std::int64_t,
                      bool, double, bool, bool, int>,
           std::size_t>
      index_;
};

void add_gqa_attention(inventory_builder& b, const attention_spec& a, std::int64_t h, const std::string& p) {
  const int tp = b.tp();
  const std::int64_t hd = a.head_dim, vd = a.v_head_dim > 0 ? a.v_head_dim : a.head_dim;
  const std::int64_t q = a.num_heads * hd * (a.output_gate ? 2 : 1);
  const std::int64_t k = a.num_kv_heads * hd, v = a.num_kv_heads * vd;
  const std::int64_t kv_rank_heads = kv_heads_per_rank(a.num_kv_heads, tp);
  b.column(p + ".q_proj", tensor_role::attention, q, h, q / tp);
  if (!a.kv_shared) b.column(p + ".k_proj", tensor_role::attention, k, h, kv_rank_heads * hd);
  if (!a.k_eq_v && !a.kv_shared) b.column(p + ".v_proj", tensor_role::attention, v, h, kv_rank_heads * vd);
  b.row(p + ".o_proj", tensor_role::attention, h, a.num_heads * vd, a.num_heads / tp * vd);
  if (a.qkv_bias) {
    b.column(p + ".q_proj", tensor_role::bias, q, 1, q / tp, false, 1, 1, "bias");
    b.column(p + ".k_proj", tensor_role::bias, k, 1, kv_rank_heads * hd, false, 1, 1, "bias");
    if (!a.k_eq_v) b.column(p + ".v_proj", tensor_role::bias, v, 1, kv_rank_heads * vd, false, 1, 1, "bias");
  }
  if (a.o_bias) b.replicated(p + ".o_proj", tensor_role::bias, h, 1, false, 1, 1, "bias");
  if (a.qk_norm) {
    b.replicated(p + ".q_norm", tensor_role::norm, hd);
    if (!a.kv_shared) b.replicated(p + ".k_norm", tensor_role::norm, hd);
  }
  if (a.sinks) b.column(p + ".sinks", tensor_role::attention, a.num_heads, 1, a.num_heads / tp, false, 1, 1, "");
  if (a.indexer) {
    // MiniMax-M3 (vLLM MinimaxM3QKVParallelLinearWithIndexer): index queries
    // sharded like the KV heads, one index-key head replicated, two norms.
    const sparse_indexer_spec& x = *a.indexer;
    b.column(p + ".index_q_proj", tensor_role::indexer, x.num_heads * x.head_dim, h, kv_heads_per_rank(x.num_heads, tp) * x.head_dim);
    b.replicated(p + ".index_k_proj", tensor_role::indexer, x.head_dim, h, true);
    b.replicated(p + ".index_q_norm", tensor_role::indexer, x.head_dim);
    b.replicated(p + ".index_k_norm", tensor_role::indexer, x.head_dim);
  }
}

// Multi-head latent attention (vLLM DeepseekV2MLAAttention): the
// down-projections to the latents are replicated, the up-projections split
// by head. DSA adds the lightning indexer's projections (replicated: vLLM
// runs the indexer on every rank).
void add_mla_attention(inventory_builder& b, const mla_spec& a, std::int64_t h, const std::string& p) {
  const int tp = b.tp();
  const std::int64_t heads = a.num_heads;
  const std::int64_t qk = a.qk_nope_head_dim + a.qk_rope_head_dim;
  if (a.q_lora_rank > 0) {
    b.replicated(p + ".q_a_proj", tensor_role::attention, a.q_lora_rank, h, true);
    b.replicated(p + ".q_a_layernorm", tensor_role::norm, a.q_lora_rank);
    b.column(p + ".q_b_proj", tensor_role::attention, heads * qk, a.q_lora_rank, heads / tp * qk);
  } else {
    b.column(p + ".q_proj", tensor_role::attention, heads * qk, h, heads / tp * qk);
  }
  b.replicated(p + ".kv_a_proj_with_mqa", tensor_role::attention, a.kv_lora_rank + a.qk_rope_head_dim, h, true);
  b.replicated(p + ".kv_a_layernorm", tensor_role::norm, a.kv_lora_rank);
  const std::int64_t kv_b = heads * (a.qk_nope_head_dim + a.v_head_dim);
  b.column(p + ".kv_b_proj", tensor_role::attention, kv_b, a.kv_lora_rank, kv_b / tp);
  b.row(p + ".o_proj", tensor_role::attention, h, heads * a.v_head_dim, heads / tp * a.v_head_dim);
  if (a.output_gate) b.column(p + ".g_proj", tensor_role::attention, heads * a.v_head_dim, h, heads / tp * a.v_head_dim);
  if (a.indexer && !a.shared_indexer) {
    const sparse_indexer_spec& x = *a.indexer;
    const std::string ip = p + ".indexer";
    b.replicated(ip + ".wq_b", tensor_role::indexer, x.num_heads * x.head_dim, x.q_input_dim, true);
    b.replicated(ip + ".wk", tensor_role::indexer, x.head_dim, h, true);
    b.replicated(ip + ".k_norm", tensor_role::indexer, x.head_dim);
    b.replicated(ip + ".k_norm", tensor_role::indexer, x.head_dim, 1, false, 1, 1, "bias");
    b.replicated(ip + ".weights_proj", tensor_role::indexer, x.num_heads, h, false);
  }
}

// Gated DeltaNet (transformers Qwen3NextGatedDeltaNet / Qwen3_5GatedDeltaNet)
// and Kimi Delta Attention: input projections column-parallel by head, the
// short convolution and per-head parameters split by head, the output
// projection row-parallel.
void add_linear_attention(inventory_builder& b, const linear_attention_spec& a, std::int64_t h, const std::string& p) {
  const int tp = b.tp();
  const std::int64_t key = a.num_k_heads * a.head_k_dim, value = a.num_v_heads * a.head_v_dim;
  const std::int64_t conv = 2 * key + value;
  const tensor_role r = tensor_role::linear_attention;
  if (a.kind == linear_attention_kind::gated_deltanet) {
    b.column(p + ".in_proj_qkv", r, conv, h, conv / tp);
    b.column(p + ".in_proj_z", r, value, h, value / tp);
    b.column(p + ".in_proj_b", r, a.num_v_heads, h, a.num_v_heads / tp);
    b.column(p + ".in_proj_a", r, a.num_v_heads, h, a.num_v_heads / tp);
    b.column(p + ".conv1d", r, conv, a.conv_kernel, conv / tp, false);
    b.column(p + ".dt_bias", r, a.num_v_heads, 1, a.num_v_heads / tp, false, 1, 1, "");
    if (a.fp32_decay_and_norm) {
      b.fixed(p + ".A_log", r, a.num_v_heads, a.num_v_heads / tp, dtype::float32, "");
      b.fixed(p + ".norm", tensor_role::norm, a.head_v_dim, a.head_v_dim, dtype::float32, "weight");
    } else {
      b.column(p + ".A_log", r, a.num_v_heads, 1, a.num_v_heads / tp, false, 1, 1, "");
      b.replicated(p + ".norm", tensor_role::norm, a.head_v_dim);
    }
    b.row(p + ".out_proj", r, h, value, value / tp);
  } else {
    // Kimi Delta Attention (vLLM KimiDeltaAttention): separate q/k/v
    // projections, each with its own short convolution, a low-rank forget
    // gate (f_a, f_b) and output gate (g_a, g_b), beta, A_log and dt_bias.
    b.column(p + ".q_proj", r, key, h, key / tp);
    b.column(p + ".k_proj", r, key, h, key / tp);
    b.column(p + ".v_proj", r, value, h, value / tp);
    b.column(p + ".q_conv1d", r, key, a.conv_kernel, key / tp, false);
    b.column(p + ".k_conv1d", r, key, a.conv_kernel, key / tp, false);
    b.column(p + ".v_conv1d", r, value, a.conv_kernel, value / tp, false);
    b.replicated(p + ".f_a_proj", r, a.head_v_dim, h, true);
    b.column(p + ".f_b_proj", r, value, a.head_v_dim, value / tp);
    b.column(p + ".b_proj", r, a.num_v_heads, h, a.num_v_heads / tp);
    if (a.full_rank_gate) {
      b.column(p + ".g_proj", r, value, h, value / tp);
    } else {
      b.replicated(p + ".g_a_proj", r, a.head_v_dim, h, true);
      b.column(p + ".g_b_proj", r, value, a.head_v_dim, value / tp);
    }
    b.column(p + ".A_log", r, a.num_v_heads, 1, a.num_v_heads / tp, false, 1, 1, "");
    b.column(p + ".dt_bias", r, value, 1, value / tp, false, 1, 1, "");
    b.replicated(p + ".o_norm", tensor_role::norm, a.head_v_dim);
    b.row(p + ".o_proj", r, h, value, value / tp);
  }
}

// Mamba-2 (vLLM MambaMixer2): in_proj yields z, x, B, C and dt; the
// convolution runs over x, B and C; groups are split by tp (replicated when tp
// exceeds them); the gated RMSNorm spans the intermediate width.
void add_mamba2(inventory_builder& b, const mamba2_spec& a, std::int64_t h, const std::string& p) {
  const int tp = b.tp();
  const std::int64_t inter = a.intermediate(), bc = 2 * a.n_groups * a.state_size;
  const std::int64_t groups_rank = a.n_groups >= tp ? a.n_groups / tp : 1;
  const std::int64_t bc_rank = 2 * groups_rank * a.state_size;
  const std::int64_t in_rows = 2 * inter + bc + a.num_heads;
  const tensor_role r = tensor_role::mamba;
  b.column(p + ".in_proj", r, in_rows, h, 2 * inter / tp + bc_rank + a.num_heads / tp);
  if (a.proj_bias) b.column(p + ".in_proj", tensor_role::bias, in_rows, 1, 2 * inter / tp + bc_rank + a.num_heads / tp, false, 1, 1, "bias");
  const std::int64_t conv = inter + bc, conv_rank = inter / tp + bc_rank;
  b.column(p + ".conv1d", r, conv, a.conv_kernel, conv_rank, false);
  if (a.conv_bias) b.column(p + ".conv1d", tensor_role::bias, conv, 1, conv_rank, false, 1, 1, "bias");
  b.column(p + ".dt_bias", r, a.num_heads, 1, a.num_heads / tp, false, 1, 1, "");
  b.column(p + ".A_log", r, a.num_heads, 1, a.num_heads / tp, false, 1, 1, "");
  b.column(p + ".D", r, a.num_heads, 1, a.num_heads / tp, false, 1, 1, "");
  b.column(p + ".norm", tensor_role::norm, inter, 1, inter / tp, false);
  b.row(p + ".out_proj", r, h, inter, inter / tp);
  if (a.proj_bias) b.replicated(p + ".out_proj", tensor_role::bias, h, 1, false, 1, 1, "bias");
}

// DeepSeek-V4 attention (vLLM models/deepseek_v4: DeepseekV4Attention,
// DeepseekCompressor, DeepseekV4Indexer; checkpoint names as stored):
// queries column-parallel by head, the grouped output projection split by
// group, everything else replicated. Compressors and the indexer's
// weights_proj stay 16-bit (not linear layers for quantization).
void add_compressed_mla(inventory_builder& b, const compressed_mla_spec& a, std::int64_t h, const std::string& p) {
  const int tp = b.tp();
  const std::int64_t q = a.num_heads * a.head_dim;
  b.replicated(p + ".wq_a", tensor_role::attention, a.q_lora_rank, h, true);
  b.replicated(p + ".wkv", tensor_role::attention, a.head_dim, h, true);
  b.replicated(p + ".q_norm", tensor_role::norm, a.q_lora_rank);
  b.replicated(p + ".kv_norm", tensor_role::norm, a.head_dim);
  b.column(p + ".wq_b", tensor_role::attention, q, a.q_lora_rank, q / tp);
  b.column(p + ".wo_a", tensor_role::attention, a.o_groups * a.o_lora_rank, q / a.o_groups, a.o_groups / tp * a.o_lora_rank);
  b.row(p + ".wo_b", tensor_role::attention, h, a.o_groups * a.o_lora_rank, a.o_groups / tp * a.o_lora_rank);
  b.column(p + ".attn_sink", tensor_role::attention, a.num_heads, 1, a.num_heads / tp, false, 1, 1, "");
  const auto compressor = [&](const std::string& c, std::int64_t width, std::int64_t ratio, std::int64_t norm) {
    b.replicated(c + ".wkv", tensor_role::attention, width, h);
    b.replicated(c + ".wgate", tensor_role::attention, width, h);
    b.replicated(c + ".ape", tensor_role::attention, ratio, width, false, 1, 1, "");
    b.replicated(c + ".norm", tensor_role::norm, norm);
  };
  if (a.compress_ratio > 0) compressor(p + ".compressor", (a.compress_ratio == 4 ? 2 : 1) * a.head_dim, a.compress_ratio, a.head_dim);
  if (a.indexer) {
    const sparse_indexer_spec& x = *a.indexer;
    b.replicated(p + ".indexer.wq_b", tensor_role::indexer, x.num_heads * x.head_dim, x.q_input_dim, true);
    b.replicated(p + ".indexer.weights_proj", tensor_role::indexer, x.num_heads, h);
    compressor(p + ".indexer.compressor", 2 * x.head_dim, a.compress_ratio, x.head_dim);
  }
}

// One MLP of width `inter`: gate/up (or up alone) column-parallel, down row-parallel.
void add_mlp(inventory_builder& b, std::int64_t h, std::int64_t inter, mlp_activation act, bool bias, const std::string& p,
             tensor_role role, std::int64_t instances = 1, double active = 1) {
  const int tp = b.tp();
  const std::int64_t rank = split(inter, tp);
  if (act == mlp_activation::gated) b.column(p + ".gate_proj", role, inter, h, rank, true, instances, active);
  b.column(p + ".up_proj", role, inter, h, rank, true, instances, active);
  b.row(p + ".down_proj", role, h, inter, rank, true, instances, active);
  if (bias) {
    if (act == mlp_activation::gated) b.column(p + ".gate_proj", tensor_role::bias, inter, 1, rank, false, instances, active, "bias");
    b.column(p + ".up_proj", tensor_role::bias, inter, 1, rank, false, instances, active, "bias");
    b.replicated(p + ".down_proj", tensor_role::bias, h, 1, false, instances, active, "bias");
  }
}

void add_moe(inventory_builder& b, const moe_spec& e, std::int64_t h, const std::string& p, const module_names& n) {
  const double active = static_cast<double>(e.experts_per_token) / static_cast<double>(e.num_experts);
  b.replicated(p + "." + n.router, tensor_role::router, e.num_experts, h);
  if (e.router_bias) b.replicated(p + "." + n.router, tensor_role::router, e.num_experts, 1, false, 1, 1, "e_score_correction_bias");
  const std::int64_t width = e.latent_size > 0 ? e.latent_size : h;
  if (e.latent_size > 0) {
    // Latent MoE: routed experts run in a narrower latent, projected down and back up around them.
    b.column(p + ".fc1_latent_proj", tensor_role::expert, e.latent_size, h, e.latent_size, true);
    b.column(p + ".fc2_latent_proj", tensor_role::expert, h, e.latent_size, h, true);
    if (e.latent_norm) b.replicated(p + ".latent_norm", tensor_role::norm, e.latent_size);
  }
  add_mlp(b, width, e.expert_intermediate_size, e.activation, e.expert_bias, p + "." + n.experts + ".*", tensor_role::expert,
          e.num_experts, active);
  if (e.shared_intermediate_size > 0)
    add_mlp(b, h, e.shared_intermediate_size, e.activation, false, p + "." + n.shared_experts, tensor_role::shared_expert);
  if (e.shared_expert_gate) b.replicated(p + ".shared_expert_gate", tensor_role::router, 1, h);
}

void add_layer(inventory_builder& b, const model_spec& m, const layer_spec& l, const std::string& p) {
  const std::int64_t h = m.hidden_size;
  const module_names& n = m.naming;
  switch (l.mixer) {
    case mixer_kind::attention: add_gqa_attention(b, l.attention, h, p + "." + n.attention); break;
    case mixer_kind::mla: add_mla_attention(b, l.mla, h, p + "." + n.attention); break;
    case mixer_kind::linear_attention: add_linear_attention(b, l.linear, h, p + "." + n.linear_attention); break;
    case mixer_kind::mamba2: add_mamba2(b, l.mamba, h, p + "." + n.mamba); break;
    case mixer_kind::compressed_mla: add_compressed_mla(b, l.compressed, h, p + "." + n.attention); break;
    case mixer_kind::none: break;
  }
  if (l.norms > 0) b.replicated(p + ".norms", tensor_role::norm, h, 1, false, l.norms, 1, "");
  if (l.mlp) add_mlp(b, h, l.mlp->intermediate_size, l.mlp->activation, l.mlp->bias, p + "." + n.mlp, tensor_role::mlp);
  if (l.moe) add_moe(b, *l.moe, h, n.moe.empty() ? p : p + "." + n.moe, n);
  for (const auto& e : l.extras) b.extra(p + ".", e);
}

}  // namespace

tensor_inventory build_inventory(const model_spec& m, int tp) {
  validate_tp(m, tp);
  inventory_builder b(tp);
  const std::int64_t h = m.hidden_size;
  const std::int64_t vocab_rank = split(ceil_div(m.vocab_size, vocab_padding) * vocab_padding, tp);

  // With tied embeddings a last pipeline stage keeps the embedding as its LM head.
  if (m.holds_embedding || (m.tie_word_embeddings && m.holds_lm_head))
    b.column("model.embed_tokens", tensor_role::embedding, m.vocab_size, h, vocab_rank, false);
  // Layers that repeat are emitted once, for all their indices (most models have a few distinct layers).
  std::vector<std::pair<const layer_spec*, std::vector<std::int64_t>>> distinct;
  for (std::int64_t i = 0; i < m.num_layers(); ++i) {
    const layer_spec& l = m.layers[static_cast<std::size_t>(i)];
    auto it = std::find_if(distinct.begin(), distinct.end(), [&](const auto& d) { return *d.first == l; });
    if (it == distinct.end()) {
      distinct.emplace_back(&l, std::vector<std::int64_t>{m.first_layer + i});
    } else {
      it->second.push_back(m.first_layer + i);
    }
  }
  for (auto& [l, ids] : distinct) {
    b.at_layers(std::move(ids), true);
    add_layer(b, m, *l, m.naming.layers + ".{i}");
  }
  for (std::size_t k = 0; k < m.mtp_layers.size(); ++k) {
    b.at_layers({m.first_layer + m.num_layers() + static_cast<std::int64_t>(k)}, false);
    add_layer(b, m, m.mtp_layers[k],
              m.naming.mtp_layers.empty() ? m.naming.layers + ".{i}" : fmt::format("{}.{}", m.naming.mtp_layers, k));
  }
  b.at_layers({}, true);
  if (m.final_norms > 0 && m.holds_lm_head) b.replicated("model.norm", tensor_role::norm, h, 1, false, m.final_norms);
  for (const auto& e : m.extras) b.extra("model.", e);
  for (const auto& e : m.vision) b.extra("", e);
  if (!m.tie_word_embeddings && m.holds_lm_head) b.column("lm_head", tensor_role::lm_head, m.vocab_size, h, vocab_rank, false);
  return b.take();
}

std::vector<model_spec> pipeline_stages(const model_spec& m, int pp) {
  const std::int64_t layers = m.num_layers();
  if (pp < 1 || pp > layers)
    throw input_error(fmt::format("--pipeline-parallel-size: {} is outside [1, {}] (the {} layers of {})", pp, layers, layers, m.name));
  if (pp == 1) return {m};
  // get_pp_indices: layers / pp each; the remainder one each to the stages before the last, from the last backwards.
  std::vector<std::int64_t> sizes(static_cast<std::size_t>(pp), layers / pp);
  for (std::int64_t i = 2; i < layers % pp + 2; ++i) ++sizes[static_cast<std::size_t>(pp - i)];
  std::vector<model_spec> stages;
  std::int64_t start = 0;
  for (int s = 0; s < pp; ++s) {
    model_spec st = m;
    const std::int64_t n = sizes[static_cast<std::size_t>(s)];
    st.layers.assign(m.layers.begin() + start, m.layers.begin() + start + n);
    st.first_layer = m.first_layer + start;
    st.holds_embedding = s == 0 && m.holds_embedding;
    st.holds_lm_head = s == pp - 1 && m.holds_lm_head;
    if (!st.holds_lm_head) st.mtp_layers.clear();
    if (s != 0) st.vision.clear();
    // Model-level extras: the LM head's (phi's lm_head.bias) go last, the rest (per-layer embeddings) first.
    std::vector<extra_tensor> kept;
    for (const auto& e : m.extras) {
      const bool head = e.role == tensor_role::lm_head || e.name.starts_with("lm_head");
      if (head ? st.holds_lm_head : s == 0) kept.push_back(e);
    }
    st.extras = std::move(kept);
    st.name = fmt::format("{} (pipeline stage {} of {}: layers {}-{})", m.name, s + 1, pp, st.first_layer, st.first_layer + n - 1);
    stages.push_back(std::move(st));
    start += n;
  }
  return stages;
}

}  // namespace gpucal::model
