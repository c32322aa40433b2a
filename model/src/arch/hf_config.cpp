// Parses Hugging Face config.json files into a model_spec. Each family's
// keys follow the transformers configuration classes (LlamaConfig,
// Qwen2MoeConfig, DeepseekV3Config, Gemma2Config, ...); defaults applied
// here are those classes' defaults and are named in the code.
#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "gpucal/model/errors.hpp"
#include "gpucal/model/model_spec.hpp"
#include "detail/json_fields.hpp"

namespace gpucal::model {

std::int64_t model_spec::num_sliding_layers() const {
  return std::count(sliding_layers.begin(), sliding_layers.end(), true);
}

namespace {

using json = nlohmann::json;
using detail::field_reader;

std::optional<quant_spec> parse_quantization(const field_reader& cfg, dtype model_dtype) {
  if (!cfg.has("quantization_config")) return std::nullopt;
  const json& qc = cfg.raw("quantization_config");
  if (!qc.is_object()) cfg.fail("quantization_config", "must be an object");
  field_reader q(qc, cfg.where() + ": quantization_config");
  const std::string method = q.string_or("quant_method", "");
  quant_spec s;
  s.method = method;
  s.origin = "config.json quantization_config";
  if (method == "awq" || method == "gptq") {
    // AutoAWQ's older configs spell bits and group_size as w_bit and q_group_size.
    const char* bits_key = q.has("w_bit") ? "w_bit" : "bits";
    const char* group_key = q.has("q_group_size") ? "q_group_size" : "group_size";
    const std::int64_t bits = q.positive_int_or(bits_key, 4);
    if (bits != 4 && bits != 8) q.fail(bits_key, fmt::format("{} is not supported (allowed: 4, 8)", bits));
    s.weight = bits == 4 ? dtype::int4 : dtype::int8;
    const json& g = q.has(group_key) ? q.raw(group_key) : json(128);
    if (!g.is_number_integer() || (g.get<std::int64_t>() <= 0 && g.get<std::int64_t>() != -1))
      q.fail(group_key, fmt::format("must be -1 (per channel) or a positive integer, got {}", g.dump()));
    if (g.get<std::int64_t>() == -1) {
      s.granularity = scale_granularity::channel;
    } else {
      s.granularity = scale_granularity::group;
      s.group_size = g.get<std::int64_t>();
    }
    s.scale_bytes = 2;  // AWQ and GPTQ checkpoints store fp16 scales
    s.zero_points = method == "awq" ? q.boolean_or("zero_point", true) : !q.boolean_or("sym", true);
    s.act_order = method == "gptq" && q.boolean_or("desc_act", false);
    s.quantize_lm_head = q.boolean_or("lm_head", false);
    return s;
  }
  if (method == "fp8") {
    s.weight = dtype::fp8_e4m3;
    s.scale_bytes = 4;
    if (q.has("weight_block_size")) {
      const json& b = q.raw("weight_block_size");
      if (!b.is_array() || b.size() != 2 || !b[0].is_number_integer() || b[0] != b[1] || b[0].get<std::int64_t>() <= 0)
        q.fail("weight_block_size", fmt::format("must be [n, n] with n > 0, got {}", b.dump()));
      s.granularity = scale_granularity::block;
      s.group_size = b[0].get<std::int64_t>();
    } else {
      s.granularity = scale_granularity::tensor;
    }
    return s;
  }
  if (method == "compressed-tensors") {
    if (!q.has("config_groups") || !q.raw("config_groups").is_object() || q.raw("config_groups").empty())
      q.fail("config_groups", "must be a non-empty object");
    const auto& [group_name, group] = *q.raw("config_groups").items().begin();
    if (!group.contains("weights") || !group.at("weights").is_object())
      q.fail("config_groups", fmt::format("group '{}' has no 'weights' object", group_name));
    field_reader w(group.at("weights"), q.where() + ".config_groups." + group_name + ".weights");
    const std::int64_t bits = w.positive_int("num_bits");
    const std::string type = w.string_or("type", "int");
    const std::string strategy = w.string_or("strategy", "tensor");
    if (type == "float" && bits == 8) {
      s.weight = dtype::fp8_e4m3;
    } else if (type == "int" && bits == 8) {
      s.weight = dtype::int8;
    } else if (type == "int" && bits == 4) {
      s.weight = dtype::int4;
    } else {
      w.fail("num_bits", fmt::format("{}-bit {} weights are not supported (allowed: 8-bit float, 8-bit int, 4-bit int)", bits, type));
    }
    if (strategy == "tensor") {
      s.granularity = scale_granularity::tensor;
    } else if (strategy == "channel") {
      s.granularity = scale_granularity::channel;
    } else if (strategy == "group") {
      s.granularity = scale_granularity::group;
      s.group_size = w.positive_int("group_size");
    } else if (strategy == "block") {
      const json& b = w.raw("block_structure");
      s.granularity = scale_granularity::block;
      s.group_size = b.is_array() && !b.empty() ? b[0].get<std::int64_t>() : 128;
    } else {
      w.fail("strategy", fmt::format("'{}' is not supported (allowed: tensor, channel, group, block)", strategy));
    }
    // compressed-tensors stores scales in the model dtype.
    s.scale_bytes = dtype_bits(model_dtype) / 8;
    s.zero_points = !w.boolean_or("symmetric", true);
    return s;
  }
  q.fail("quant_method", fmt::format("'{}' is not supported (allowed: awq, gptq, fp8, compressed-tensors)", method));
}

// Longest context, as vLLM derives it: max_position_embeddings, scaled by the
// rope factor except for the llama3/longrope/su types, starting from
// original_max_position_embeddings for yarn.
std::int64_t derive_max_model_len(const field_reader& cfg, std::int64_t max_pos) {
  if (!cfg.has("rope_scaling")) return max_pos;
  const json& rs = cfg.raw("rope_scaling");
  if (!rs.is_object() || !rs.contains("factor") || !rs.at("factor").is_number()) return max_pos;
  std::string type = rs.value("rope_type", rs.value("type", std::string()));
  if (type == "llama3" || type == "longrope" || type == "su" || type == "default" || type == "mrope") return max_pos;
  double len = static_cast<double>(max_pos);
  if (type == "yarn" && rs.contains("original_max_position_embeddings") &&
      rs.at("original_max_position_embeddings").is_number_integer())
    len = rs.at("original_max_position_embeddings").get<double>();
  return static_cast<std::int64_t>(len * rs.at("factor").get<double>());
}

// Per-layer sliding flags from `layer_types` (newer configs) or the family's rule.
void parse_sliding(const field_reader& cfg, model_spec& m) {
  m.sliding_layers.assign(static_cast<std::size_t>(m.num_layers), false);
  if (cfg.has("layer_types")) {
    const json& lt = cfg.raw("layer_types");
    if (!lt.is_array() || static_cast<std::int64_t>(lt.size()) != m.num_layers)
      cfg.fail("layer_types", fmt::format("must list one type per layer ({})", m.num_layers));
    for (std::size_t i = 0; i < lt.size(); ++i) {
      const std::string t = lt[i].is_string() ? lt[i].get<std::string>() : "";
      if (t != "sliding_attention" && t != "full_attention")
        cfg.fail("layer_types", fmt::format("entry {} is '{}' (allowed: sliding_attention, full_attention)", i, lt[i].dump()));
      m.sliding_layers[i] = t == "sliding_attention";
    }
  } else if (m.model_type == "gemma2") {
    // transformers Gemma2: layers 0, 2, 4, ... use the sliding window.
    for (std::int64_t i = 0; i < m.num_layers; ++i) m.sliding_layers[static_cast<std::size_t>(i)] = i % 2 == 0;
  } else if (m.model_type == "gemma3_text") {
    // transformers Gemma3TextConfig: every sliding_window_pattern-th layer is global (default 6).
    const std::int64_t pattern = cfg.positive_int_or("sliding_window_pattern", 6);
    for (std::int64_t i = 0; i < m.num_layers; ++i)
      m.sliding_layers[static_cast<std::size_t>(i)] = (i + 1) % pattern != 0;
  } else if (m.model_type.starts_with("qwen")) {
    // Qwen2/Qwen3: the window applies only with use_sliding_window, from layer max_window_layers on.
    if (cfg.boolean_or("use_sliding_window", false)) {
      const std::int64_t from = cfg.non_negative_int_or("max_window_layers", 0);
      for (std::int64_t i = from; i < m.num_layers; ++i) m.sliding_layers[static_cast<std::size_t>(i)] = true;
    }
  } else {
    // llama, mistral, mixtral, phi3: a non-null sliding_window applies to every layer.
    std::fill(m.sliding_layers.begin(), m.sliding_layers.end(), cfg.has("sliding_window"));
  }
  if (m.num_sliding_layers() > 0) {
    m.sliding_window = cfg.positive_int_or("sliding_window", m.model_type == "gemma3_text" ? 4096 : 0);
    if (*m.sliding_window == 0) cfg.fail("sliding_window", "is missing but layers use a sliding window");
  }
}

model_spec parse_text_config(const json& root, const field_reader& cfg, std::string_view name, std::string_view where) {
  model_spec m;
  m.name = std::string(name);
  m.source = std::string(where);
  m.model_type = cfg.string_or("model_type", "");
  static const std::set<std::string> supported = {"llama", "mistral", "qwen2", "qwen3", "mixtral", "qwen2_moe",
                                                  "qwen3_moe", "deepseek_v2", "deepseek_v3", "gemma2", "gemma3_text", "phi3"};
  if (m.model_type.empty()) cfg.fail("model_type", "is missing");
  if (!supported.contains(m.model_type))
    cfg.fail("model_type", fmt::format("'{}' is not supported (supported: {})", m.model_type, supported_model_types));

  const bool gemma = m.model_type == "gemma2" || m.model_type == "gemma3_text";
  const bool deepseek = m.model_type.starts_with("deepseek");
  m.hidden_size = cfg.positive_int("hidden_size");
  m.num_layers = cfg.positive_int("num_hidden_layers");
  m.num_heads = cfg.positive_int("num_attention_heads");
  m.num_kv_heads = cfg.positive_int_or("num_key_value_heads", m.num_heads);
  // Gemma3TextConfig's defaults fill fields the multimodal configs leave out.
  m.vocab_size = m.model_type == "gemma3_text" ? cfg.positive_int_or("vocab_size", 262208) : cfg.positive_int("vocab_size");
  m.max_position_embeddings = m.model_type == "gemma3_text" ? cfg.positive_int_or("max_position_embeddings", 131072)
                                                            : cfg.positive_int("max_position_embeddings");
  m.max_model_len = derive_max_model_len(cfg, m.max_position_embeddings);
  if (cfg.has("rope_theta")) m.rope_theta = cfg.number_in("rope_theta", 1, 1e12);
  if (cfg.has("rms_norm_eps")) m.rms_norm_eps = cfg.number_in("rms_norm_eps", 0, 1);
  // Older configs (Llama 2) omit them; transformers' LlamaConfig, MistralConfig
  // and Qwen2Config then use rope_theta = 10000.0 and rms_norm_eps = 1e-6.
  if (m.model_type == "llama" || m.model_type == "mistral" || m.model_type == "qwen2") {
    if (!m.rope_theta) {
      m.rope_theta = 10000.0;
      m.notes.push_back("rope_theta absent: transformers' default 10000.0 assumed");
    }
    if (!m.rms_norm_eps) {
      m.rms_norm_eps = 1e-6;
      m.notes.push_back("rms_norm_eps absent: transformers' default 1e-6 assumed");
    }
  }
  if (cfg.has("rope_scaling") && cfg.raw("rope_scaling").is_object()) {
    const json& rs = cfg.raw("rope_scaling");
    if (rs.value("rope_type", rs.value("type", std::string())) == "llama3") {
      field_reader r(rs, cfg.where() + ".rope_scaling");
      m.llama3_rope_scaling = std::vector<double>{r.number_in("factor", 1, 1e6), r.number_in("low_freq_factor", 0, 1e6),
                                                  r.number_in("high_freq_factor", 0, 1e6),
                                                  r.number_in("original_max_position_embeddings", 1, 1e9)};
    }
  }
  if (m.hidden_size % m.num_heads != 0 && !cfg.has("head_dim"))
    cfg.fail("head_dim", fmt::format("is missing and hidden_size {} is not a multiple of num_attention_heads {}",
                                     m.hidden_size, m.num_heads));
  m.head_dim = cfg.positive_int_or("head_dim", m.hidden_size / m.num_heads);
  // transformers: Gemma ties embeddings by default; the others do not.
  m.tie_word_embeddings = cfg.boolean_or("tie_word_embeddings", gemma);

  const std::string dtype_key = cfg.has("torch_dtype") ? "torch_dtype" : "dtype";
  if (cfg.has(dtype_key.c_str())) {
    m.torch_dtype = parse_float_dtype(cfg.string_or(dtype_key.c_str(), ""), cfg.where() + ": field '" + dtype_key + "'");
  } else if (root.contains("torch_dtype") && root.at("torch_dtype").is_string()) {
    // Multimodal configs (gemma3) keep torch_dtype on the outer object.
    m.torch_dtype = parse_float_dtype(root.at("torch_dtype").get<std::string>(), std::string(where) + ": field 'torch_dtype'");
  } else {
    m.torch_dtype = dtype::bfloat16;
    m.notes.push_back("config has no torch_dtype; bfloat16 assumed");
  }

  // Attention projections and their biases.
  if (m.model_type == "qwen2" || m.model_type == "qwen2_moe") {
    m.qkv_bias = true;  // Qwen2Attention: q/k/v always carry a bias
  } else {
    m.qkv_bias = cfg.boolean_or("attention_bias", false);
    m.o_bias = m.qkv_bias && (m.model_type == "llama" || m.model_type == "mistral");  // LlamaAttention: o_proj bias follows attention_bias
  }
  m.mlp_bias = cfg.boolean_or("mlp_bias", false);
  m.qk_norm = m.model_type == "qwen3" || m.model_type == "qwen3_moe" || m.model_type == "gemma3_text";
  m.norms_per_layer = gemma ? 4 : 2;

  if (deepseek) {
    mla_spec a;
    a.q_lora_rank = cfg.has("q_lora_rank") ? cfg.positive_int("q_lora_rank") : 0;
    a.kv_lora_rank = cfg.positive_int("kv_lora_rank");
    a.qk_nope_head_dim = cfg.positive_int("qk_nope_head_dim");
    a.qk_rope_head_dim = cfg.positive_int("qk_rope_head_dim");
    a.v_head_dim = cfg.positive_int("v_head_dim");
    m.mla = a;
    m.head_dim = a.qk_nope_head_dim + a.qk_rope_head_dim;
    m.num_kv_heads = m.num_heads;  // MLA expands the latent to every head; the cache holds the latent
  }

  // MLP / MoE.
  const bool moe_family = m.model_type == "mixtral" || m.model_type == "qwen2_moe" || m.model_type == "qwen3_moe" || deepseek;
  if (!moe_family) {
    m.intermediate_size = cfg.positive_int("intermediate_size");
  } else {
    moe_spec e;
    e.moe_layers.assign(static_cast<std::size_t>(m.num_layers), true);
    if (m.model_type == "mixtral") {
      e.num_experts = cfg.positive_int("num_local_experts");
      e.experts_per_token = cfg.positive_int("num_experts_per_tok");
      e.expert_intermediate_size = cfg.positive_int("intermediate_size");
    } else if (deepseek) {
      e.num_experts = cfg.positive_int("n_routed_experts");
      e.experts_per_token = cfg.positive_int("num_experts_per_tok");
      e.expert_intermediate_size = cfg.positive_int("moe_intermediate_size");
      e.shared_intermediate_size = cfg.non_negative_int_or("n_shared_experts", 0) * e.expert_intermediate_size;
      e.router_bias = cfg.string_or("topk_method", "") == "noaux_tc";
      m.intermediate_size = cfg.positive_int("intermediate_size");
      const std::int64_t first_dense = cfg.non_negative_int_or("first_k_dense_replace", 0);
      const std::int64_t freq = cfg.positive_int_or("moe_layer_freq", 1);
      for (std::int64_t i = 0; i < m.num_layers; ++i)
        e.moe_layers[static_cast<std::size_t>(i)] = i >= first_dense && i % freq == 0;
      if (cfg.non_negative_int_or("num_nextn_predict_layers", 0) > 0)
        m.notes.push_back("multi-token-prediction layers (num_nextn_predict_layers) are not counted: vLLM loads them only for speculative decoding");
    } else {  // qwen2_moe, qwen3_moe
      e.num_experts = cfg.positive_int("num_experts");
      e.experts_per_token = cfg.positive_int("num_experts_per_tok");
      e.expert_intermediate_size = cfg.positive_int("moe_intermediate_size");
      if (m.model_type == "qwen2_moe") {
        e.shared_intermediate_size = cfg.non_negative_int_or("shared_expert_intermediate_size", 0);
        e.shared_expert_gate = e.shared_intermediate_size > 0;
      }
      m.intermediate_size = cfg.non_negative_int_or("intermediate_size", 0);
      const std::int64_t step = cfg.positive_int_or("decoder_sparse_step", 1);
      std::set<std::int64_t> mlp_only;
      if (cfg.has("mlp_only_layers")) {
        const json& l = cfg.raw("mlp_only_layers");
        if (!l.is_array()) cfg.fail("mlp_only_layers", "must be a list of layer indices");
        for (const auto& v : l) mlp_only.insert(v.get<std::int64_t>());
      }
      for (std::int64_t i = 0; i < m.num_layers; ++i)
        e.moe_layers[static_cast<std::size_t>(i)] = !mlp_only.contains(i) && (i + 1) % step == 0;
    }
    if (e.experts_per_token > e.num_experts)
      cfg.fail("num_experts_per_tok", fmt::format("{} exceeds the number of experts {}", e.experts_per_token, e.num_experts));
    const bool has_dense = std::find(e.moe_layers.begin(), e.moe_layers.end(), false) != e.moe_layers.end();
    if (has_dense && m.intermediate_size <= 0) cfg.fail("intermediate_size", "is missing but some layers are dense");
    m.moe = e;
  }

  parse_sliding(cfg, m);
  m.quantization = parse_quantization(cfg, m.torch_dtype);
  return m;
}

}  // namespace

model_spec parse_hf_config(std::string_view json_text, std::string_view name, std::string_view where) {
  const json root = detail::parse_json_text(json_text, where);
  if (!root.is_object()) throw input_error(fmt::format("{}: the top level must be a JSON object", where));
  field_reader outer(root, std::string(where));
  const std::string type = outer.string_or("model_type", "");
  if (type == "gemma3") {
    // Multimodal Gemma 3: the language model is described by text_config.
    if (!outer.has("text_config") || !root.at("text_config").is_object()) outer.fail("text_config", "is missing");
    json text = root.at("text_config");
    if (!text.contains("model_type")) text["model_type"] = "gemma3_text";
    field_reader inner(text, std::string(where) + ": text_config");
    model_spec m = parse_text_config(root, inner, name, where);
    if (root.contains("quantization_config")) m.quantization = parse_quantization(outer, m.torch_dtype);
    m.notes.push_back("vision tower and projector (vision_config) are not counted");
    return m;
  }
  return parse_text_config(root, outer, name, where);
}

}  // namespace gpucal::model
