// Nemotron-H, Nemotron-3 Nano/Super/Ultra and Nemotron-3.5 (transformers
// NemotronHConfig; vLLM nemotron_h.py): each layer is one block, Mamba-2,
// attention, a plain relu2 MLP or a MoE of relu2 experts (with a shared
// expert, a routing bias and, in Super and Ultra, a latent space for the
// routed experts), chosen by layers_block_type or hybrid_override_pattern.
#include <fmt/format.h>

#include "arch/family.hpp"

namespace gpucal::model::arch {

namespace {

enum class block { mamba, attention, mlp, moe };

// layers_block_type (names remapped as transformers' remap_legacy_layer_types
// does) or a hybrid_override_pattern string: M Mamba-2, * attention, - MLP, E MoE.
std::vector<block> read_blocks(const field_reader& cfg, const char* list_key, const char* pattern_key,
                               std::vector<block> fallback) {
  std::vector<block> out;
  if (cfg.has(list_key)) {
    const json& l = cfg.raw(list_key);
    if (!l.is_array() || l.empty()) cfg.fail(list_key, "must be a non-empty list of block types");
    for (std::size_t i = 0; i < l.size(); ++i) {
      const std::string t = l[i].is_string() ? l[i].get<std::string>() : "";
      if (t == "mamba" || t == "linear_attention") {
        out.push_back(block::mamba);
      } else if (t == "attention" || t == "full_attention") {
        out.push_back(block::attention);
      } else if (t == "mlp") {
        out.push_back(block::mlp);
      } else if (t == "moe") {
        out.push_back(block::moe);
      } else {
        cfg.fail(list_key, fmt::format("entry {} is {} (allowed: mamba, attention, mlp, moe)", i, detail::shown(l[i])));
      }
    }
    return out;
  }
  if (cfg.has(pattern_key)) {
    const std::string p = cfg.string(pattern_key);
    if (p.empty() || static_cast<std::int64_t>(p.size()) > max_layers)
      cfg.fail(pattern_key, fmt::format("must hold 1 to {} characters", max_layers));
    for (std::size_t i = 0; i < p.size(); ++i) {
      switch (p[i]) {
        case 'M': out.push_back(block::mamba); break;
        case '*': out.push_back(block::attention); break;
        case '-': out.push_back(block::mlp); break;
        case 'E': out.push_back(block::moe); break;
        default: cfg.fail(pattern_key, fmt::format("character {} is '{}' (allowed: M, *, -, E)", i, p[i]));
      }
    }
    return out;
  }
  return fallback;
}

}  // namespace

void nemotron_h_family(const config_view& v, model_spec& m) {
  const field_reader& cfg = v.cfg;
  // NemotronHConfig: num_hidden_layers is derived from the block list (Ultra omits it).
  m.hidden_size = cfg.dim("hidden_size", max_width);
  const std::vector<block> blocks =
      read_blocks(cfg, "layers_block_type", "hybrid_override_pattern", {block::mamba, block::moe, block::attention, block::mlp});
  json patched = cfg.object_json();
  patched["num_hidden_layers"] = static_cast<std::int64_t>(blocks.size());
  const config_view pv{v.root, field_reader(patched, cfg.where()), v.where, v.wrapped, v.variant};
  read_base(pv, m, arch_defaults([](base_defaults& d) { d.vocab_size = 131072; }));
  if (cfg.has("num_hidden_layers") && cfg.raw("num_hidden_layers") != patched["num_hidden_layers"])
    m.notes.push_back(fmt::format("num_hidden_layers {} differs from the {} blocks of the layer pattern; the pattern wins, as "
                                  "in transformers", detail::shown(cfg.raw("num_hidden_layers")), blocks.size()));

  attention_spec a;
  a.num_heads = cfg.dim_or("num_attention_heads", 32, max_heads);
  a.num_kv_heads = cfg.dim_or("num_key_value_heads", 8, max_heads);
  if (a.num_heads % a.num_kv_heads != 0)
    cfg.fail("num_key_value_heads", fmt::format("{} does not divide num_attention_heads {}", a.num_kv_heads, a.num_heads));
  a.head_dim = cfg.dim_or("head_dim", 128, max_heads);
  a.v_head_dim = a.head_dim;
  a.qkv_bias = a.o_bias = cfg.boolean_or("attention_bias", false);

  mamba2_spec s;
  s.num_heads = cfg.dim_or("mamba_num_heads", 128, max_heads);
  s.head_dim = cfg.dim_or("mamba_head_dim", 64, max_heads);
  s.n_groups = cfg.dim_or("n_groups", 8, max_heads);
  s.state_size = cfg.dim_or("ssm_state_size", 128, max_heads);
  s.conv_kernel = cfg.dim_or("conv_kernel", 4, 64);
  s.conv_bias = cfg.boolean_or("use_conv_bias", true);
  s.proj_bias = cfg.boolean_or("use_bias", false);
  // vLLM (NemotronHForCausalLMConfig): the SSM state in mamba_ssm_cache_dtype, float32 when absent.
  s.state_dtype = cfg.has("mamba_ssm_cache_dtype")
                      ? parse_float_dtype(cfg.string("mamba_ssm_cache_dtype"), cfg.where() + ": field 'mamba_ssm_cache_dtype'")
                      : dtype::float32;
  if (s.num_heads % s.n_groups != 0)
    cfg.fail("n_groups", fmt::format("{} does not divide mamba_num_heads {}", s.n_groups, s.num_heads));

  std::optional<mlp_spec> mlp;
  std::optional<moe_spec> moe;
  for (block b : blocks) {
    if (b == block::mlp && !mlp)
      mlp = mlp_spec{cfg.dim_or("intermediate_size", 21504, max_width), mlp_activation::plain, cfg.boolean_or("mlp_bias", false)};
    if (b == block::moe && !moe) {
      moe_spec e = read_moe(cfg, "n_routed_experts", "num_experts_per_tok", "moe_intermediate_size", 8, 2, 7688);
      // vLLM multiplies the shared width by n_shared_experts (transformers uses it as is; equal for one).
      e.shared_intermediate_size = cfg.dim_or("moe_shared_expert_intermediate_size", 7688, max_width) *
                                   cfg.count_or("n_shared_experts", 1, 64);
      e.activation = mlp_activation::plain;
      e.router_bias = true;  // NemotronHMoE: gate.e_score_correction_bias
      e.latent_size = cfg.count_or("moe_latent_size", 0, max_width);
      moe = e;
    }
  }
  const auto make = [&](block b) {
    layer_spec l;
    l.norms = 1;  // every block has one RMSNorm before its mixer
    switch (b) {
      case block::mamba:
        l.mixer = mixer_kind::mamba2;
        l.mamba = s;
        break;
      case block::attention:
        l.mixer = mixer_kind::attention;
        l.attention = a;
        break;
      case block::mlp: l.mlp = mlp; break;
      case block::moe: l.moe = moe; break;
    }
    return l;
  };
  for (block b : blocks) m.layers.push_back(make(b));
  m.naming.layers = "backbone.layers";
  m.naming.attention = m.naming.mamba = m.naming.mlp = "mixer";
  m.naming.mtp_layers = "mtp.layers";

  // MTP (vLLM nemotron_h_mtp.py): num_nextn_predict_layers repetitions of its
  // pattern, enorm/hnorm/eh_proj before the first block, a final norm after the last.
  const std::int64_t steps = cfg.count_or("num_nextn_predict_layers", 0, 64);
  if (steps > 0) {
    const std::vector<block> pattern =
        read_blocks(cfg, "mtp_layers_block_type", "mtp_hybrid_override_pattern", {block::attention, block::moe});
    for (block b : pattern) {
      if (b == block::moe && !moe) cfg.fail("mtp_layers_block_type", "has a moe block but the model has no MoE settings");
      if (b == block::mlp && !mlp) cfg.fail("mtp_layers_block_type", "has an mlp block but the model has no MLP settings");
    }
    const std::int64_t h = m.hidden_size;
    for (std::int64_t k = 0; k < steps; ++k)
      for (std::size_t j = 0; j < pattern.size(); ++j) {
        layer_spec l = make(pattern[j]);
        if (j == 0) l.extras = mtp_join(h, shard::column);
        if (j + 1 == pattern.size()) l.extras.push_back({"final_layernorm", tensor_role::norm, h, 1});
        m.mtp_layers.push_back(l);
      }
    m.notes.push_back(fmt::format("{} multi-token-prediction block(s) are stored but not loaded: vLLM loads them only for "
                                  "speculative decoding", m.mtp_layers.size()));
  }
}

}  // namespace gpucal::model::arch
