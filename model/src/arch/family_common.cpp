// Readers shared by the family mappings (family.hpp): the base keys every
// decoder config has, GQA attention, layer_types lists and layer index lists.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "arch/family.hpp"
#include "gpucal/model/errors.hpp"

namespace gpucal::model::arch {

namespace {

// Longest context, as vLLM 0.33 derives it (vllm/config/model.py,
// _get_and_verify_max_len): max_position_embeddings times the rope factor,
// except for su/longrope/llama3 and the YaRN types (whose
// max_position_embeddings is already the scaled length) and for Gemma 3
// (already scaled). Newer configs spell rope_scaling as rope_parameters.
std::int64_t derive_max_model_len(const field_reader& cfg, const std::string& model_type, std::int64_t max_pos) {
  const char* key = cfg.has("rope_scaling") ? "rope_scaling" : "rope_parameters";
  if (!cfg.has(key)) return max_pos;
  // Checked whatever the model type, so a malformed entry is never passed over.
  const field_reader r = cfg.child(key);
  const std::string type = r.has("rope_type") ? r.string("rope_type") : r.string_or("type", "");
  if (!r.has("factor") || model_type.find("gemma3") != std::string::npos) return max_pos;
  const double factor = r.number_in("factor", 1, 1e6);
  static const char* const unscaled[] = {"su", "longrope", "llama3", "yarn", "deepseek_yarn", "deepseek_llama_scaling",
                                         "default", "mrope", ""};
  for (const char* t : unscaled)
    if (type == t) return max_pos;
  const double scaled = std::floor(static_cast<double>(max_pos) * factor);
  if (scaled > static_cast<double>(max_context))
    r.fail("factor", fmt::format("{:g} scales the context to {:.0f} tokens, beyond the {} gpucal accepts", factor, scaled,
                                 max_context));
  return static_cast<std::int64_t>(scaled);
}

}  // namespace

std::int64_t read_base(const config_view& v, model_spec& m, const base_defaults& d) {
  const field_reader& cfg = v.cfg;
  m.hidden_size = cfg.dim("hidden_size", max_width);
  const std::int64_t layers = cfg.dim("num_hidden_layers", max_layers);
  m.vocab_size = d.vocab_size ? cfg.dim_or("vocab_size", *d.vocab_size, max_vocab) : cfg.dim("vocab_size", max_vocab);
  m.max_position_embeddings = d.max_position_embeddings
                                  ? cfg.dim_or("max_position_embeddings", *d.max_position_embeddings, max_context)
                                  : cfg.dim("max_position_embeddings", max_context);
  m.max_model_len = derive_max_model_len(cfg, m.model_type, m.max_position_embeddings);

  // Wrappers keep tie_word_embeddings and torch_dtype on the outer object; the text config wins when it has them.
  const field_reader outer(v.root, v.where);
  const auto key_of = [&](const char* k) -> const field_reader* {
    if (cfg.has(k)) return &cfg;
    if (v.wrapped && outer.has(k)) return &outer;
    return nullptr;
  };
  const field_reader* tie = key_of("tie_word_embeddings");
  m.tie_word_embeddings = tie ? tie->boolean_or("tie_word_embeddings", false) : d.tie_word_embeddings;

  const field_reader* dt = key_of("torch_dtype");
  const char* dtype_key = "torch_dtype";
  if (!dt) {
    dt = key_of("dtype");
    dtype_key = "dtype";
  }
  if (dt) {
    m.torch_dtype = parse_float_dtype(dt->string_or(dtype_key, ""), dt->where() + ": field '" + dtype_key + "'");
  } else {
    m.torch_dtype = dtype::bfloat16;
    m.notes.push_back("config has no torch_dtype; bfloat16 assumed");
  }

  if (cfg.has("rope_theta")) {
    m.rope_theta = cfg.number_in("rope_theta", 1, 1e12);
  } else if (cfg.has("rope_parameters") && cfg.raw("rope_parameters").is_object()) {
    const field_reader rp(cfg.raw("rope_parameters"), cfg.where() + ".rope_parameters");
    if (rp.has("rope_theta")) m.rope_theta = rp.number_in("rope_theta", 1, 1e12);
  }
  if (cfg.has("rms_norm_eps")) m.rms_norm_eps = cfg.number_in("rms_norm_eps", 0, 1);
  const char* scaling = cfg.has("rope_scaling") ? "rope_scaling" : "rope_parameters";
  if (cfg.has(scaling) && cfg.raw(scaling).is_object()) {
    const json& rs = cfg.raw(scaling);
    const auto type = [&](const char* k) { return rs.contains(k) && rs.at(k).is_string() ? rs.at(k).get<std::string>() : ""; };
    if (type("rope_type") == "llama3" || type("type") == "llama3") {
      field_reader r(rs, cfg.where() + "." + scaling);
      m.llama3_rope_scaling = std::vector<double>{r.number_in("factor", 1, 1e6), r.number_in("low_freq_factor", 0, 1e6),
                                                  r.number_in("high_freq_factor", 0, 1e6),
                                                  r.number_in("original_max_position_embeddings", 1, 1e9)};
    }
  }
  return layers;
}

attention_spec read_attention(const field_reader& cfg, std::int64_t hidden) {
  attention_spec a;
  a.num_heads = cfg.dim("num_attention_heads", max_heads);
  a.num_kv_heads = cfg.dim_or("num_key_value_heads", a.num_heads, max_heads);
  if (a.num_kv_heads > a.num_heads)
    cfg.fail("num_key_value_heads", fmt::format("{} exceeds num_attention_heads {}", a.num_kv_heads, a.num_heads));
  if (a.num_heads % a.num_kv_heads != 0)
    cfg.fail("num_key_value_heads", fmt::format("{} does not divide num_attention_heads {}", a.num_kv_heads, a.num_heads));
  if (!cfg.has("head_dim") && hidden % a.num_heads != 0)
    cfg.fail("head_dim", fmt::format("is missing and hidden_size {} is not a multiple of num_attention_heads {}", hidden,
                                     a.num_heads));
  a.head_dim = cfg.dim_or("head_dim", hidden / a.num_heads, max_heads);
  a.v_head_dim = a.head_dim;
  return a;
}

std::optional<std::vector<std::string>> read_layer_types(const field_reader& cfg, std::int64_t layers,
                                                         const std::vector<std::string>& allowed) {
  if (!cfg.has("layer_types")) return std::nullopt;
  const json& lt = cfg.raw("layer_types");
  if (!lt.is_array() || static_cast<std::int64_t>(lt.size()) != layers)
    cfg.fail("layer_types", fmt::format("must list one type per layer ({} layers)", layers));
  std::string names;
  for (const auto& a : allowed) names += (names.empty() ? "" : ", ") + a;
  std::vector<std::string> out;
  for (std::size_t i = 0; i < lt.size(); ++i) {
    const std::string t = lt[i].is_string() ? lt[i].get<std::string>() : "";
    if (std::find(allowed.begin(), allowed.end(), t) == allowed.end())
      cfg.fail("layer_types", fmt::format("entry {} is {} (allowed: {})", i, detail::shown(lt[i]), names));
    out.push_back(t);
  }
  return out;
}

std::vector<std::int64_t> read_layer_indices(const field_reader& cfg, const char* key, std::int64_t layers) {
  std::vector<std::int64_t> out;
  if (!cfg.has(key)) return out;
  const json& l = cfg.raw(key);
  if (!l.is_array()) cfg.fail(key, "must be a list of layer indices");
  for (std::size_t i = 0; i < l.size(); ++i) {
    if (!l[i].is_number_integer() || l[i].get<std::int64_t>() < 0 || l[i].get<std::int64_t>() >= layers)
      cfg.fail(key, fmt::format("entry {} is {} (allowed: a layer index in [0, {}))", i, detail::shown(l[i]), layers));
    out.push_back(l[i].get<std::int64_t>());
  }
  return out;
}

std::vector<layer_spec> dense_layers(std::int64_t layers, const attention_spec& attention, std::int64_t intermediate,
                                     int norms) {
  layer_spec l;
  l.mixer = mixer_kind::attention;
  l.attention = attention;
  l.mlp = mlp_spec{intermediate, mlp_activation::gated, false};
  l.norms = norms;
  return std::vector<layer_spec>(static_cast<std::size_t>(layers), l);
}

json with_defaults(const json& cfg, const json& defaults, std::vector<std::string>& filled) {
  json out = cfg;
  for (const auto& [key, value] : defaults.items()) {
    if (out.contains(key) && !out.at(key).is_null()) continue;
    out[key] = value;
    filled.push_back(fmt::format("{} = {}", key, detail::shown(value)));
  }
  return out;
}

json with_class_defaults(const config_view& v, json defaults, const char* config_class, model_spec& m) {
  // A multimodal wrapper's own tie_word_embeddings wins over the text class's default.
  if (v.wrapped && v.root.contains("tie_word_embeddings")) defaults.erase("tie_word_embeddings");
  std::vector<std::string> filled;
  json text = with_defaults(v.cfg.object_json(), defaults, filled);
  if (!filled.empty()) {
    std::string keys;
    for (const auto& f : filled) keys += (keys.empty() ? "" : ", ") + f;
    m.notes.push_back(fmt::format("keys absent from the config take {}'s defaults (transformers): {}", config_class, keys));
  }
  return text;
}

moe_spec read_moe(const field_reader& cfg, const char* experts_key, const char* top_k_key, const char* width_key,
                  std::int64_t experts_default, std::int64_t top_k_default, std::int64_t width_default) {
  const auto read = [&](const char* key, std::int64_t fallback, std::int64_t limit) {
    return fallback > 0 ? cfg.dim_or(key, fallback, limit) : cfg.dim(key, limit);
  };
  moe_spec e;
  e.num_experts = read(experts_key, experts_default, max_experts);
  e.experts_per_token = read(top_k_key, top_k_default, max_experts);
  e.expert_intermediate_size = read(width_key, width_default, max_width);
  if (e.experts_per_token > e.num_experts)
    cfg.fail(top_k_key, fmt::format("{} exceeds the number of experts {}", e.experts_per_token, e.num_experts));
  return e;
}

mla_spec read_mla(const field_reader& cfg) {
  mla_spec a;
  a.num_heads = cfg.dim("num_attention_heads", max_heads);
  a.q_lora_rank = cfg.has("q_lora_rank") ? cfg.dim("q_lora_rank", max_width) : 0;
  a.kv_lora_rank = cfg.dim("kv_lora_rank", max_width);
  a.qk_nope_head_dim = cfg.dim("qk_nope_head_dim", max_heads);
  a.qk_rope_head_dim = cfg.dim("qk_rope_head_dim", max_heads);
  a.v_head_dim = cfg.dim("v_head_dim", max_heads);
  return a;
}

std::vector<extra_tensor> mtp_join(std::int64_t hidden, shard eh_split) {
  return {{"enorm", tensor_role::norm, hidden, 1},
          {"hnorm", tensor_role::norm, hidden, 1},
          {"eh_proj", tensor_role::mtp, hidden, 2 * hidden, 1, eh_split, true}};
}

void apply_sliding(std::vector<layer_spec>& layers, const std::vector<bool>& sliding, std::int64_t window) {
  for (std::size_t i = 0; i < layers.size() && i < sliding.size(); ++i) {
    if (!sliding[i] || layers[i].mixer != mixer_kind::attention) continue;
    layers[i].attention.window = attention_window::sliding;
    layers[i].attention.window_tokens = window;
  }
}

}  // namespace gpucal::model::arch
