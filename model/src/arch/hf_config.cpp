// Parses Hugging Face config.json files into a model_spec: unwraps
// multimodal configs (text_config), finds the family mapping for the text
// model's model_type, reads the checkpoint's quantization, and names the
// closest supported types when a model_type is unknown.
#include <fmt/format.h>

#include <algorithm>

#include "arch/family.hpp"
#include "gpucal/model/catalog.hpp"
#include "gpucal/model/errors.hpp"

namespace gpucal::model {

namespace arch {

const std::vector<family>& families() {
  static const std::vector<family> list = {
      {"llama", "llama", llama_family},
      {"mistral", "mistral", llama_family},
      {"qwen2", "qwen2", llama_family},
      {"qwen3", "qwen3", llama_family},
      {"phi3", "phi3", llama_family},
      {"phi", "phi", phi_family},
      {"gemma", "gemma", gemma_family},
      {"gemma2", "gemma2", gemma_family},
      {"gemma3_text", "gemma3_text", gemma_family},
      {"mixtral", "mixtral", mixtral_family},
      {"qwen2_moe", "qwen2_moe", qwen_moe_family},
      {"qwen3_moe", "qwen3_moe", qwen_moe_family},
      {"deepseek_v2", "deepseek_v2", deepseek_family},
      {"deepseek_v3", "deepseek_v3", deepseek_family},
      {"kimi_k2", "deepseek_v3", deepseek_family},
      {"deepseek_v32", "deepseek_v32", deepseek_family},
      {"glm_moe_dsa", "glm_moe_dsa", deepseek_family},
      {"qwen3_vl_text", "qwen3", llama_family},
      {"qwen3_vl_moe_text", "qwen3_moe", qwen_moe_family},
      {"qwen3_5_text", "qwen3_5", qwen3_5_family},
      {"qwen3_5_moe_text", "qwen3_5_moe", qwen3_5_family},
      {"nemotron_h", "nemotron_h", nemotron_h_family},
      {"gpt_oss", "gpt_oss", gpt_oss_family},
      {"llama4_text", "llama4", llama4_family},
      {"gemma4_text", "gemma4", gemma4_family},
      {"nemotron-nas", "nemotron-nas", nemotron_nas_family},
      {"granite", "granite", llama_family},
      {"mimo", "qwen2", llama_family},
      {"minimax_m2", "minimax_m2", minimax_family},
      {"minimax_m3", "minimax_m3", minimax_family},
      {"mimo_v2_flash", "mimo_v2_flash", mimo_v2_family},
      {"step3p7", "step3p7", step3p7_family},
      {"step3p5", "step3p7", step3p7_family},
      {"kimi_linear", "kimi_linear", kimi_linear_family},
      {"deepseek_v4", "deepseek_v4", deepseek_v4_family},
      {"deepseek_ref", "deepseek_v4", deepseek_v4_family},
  };
  return list;
}

}  // namespace arch

namespace {

using arch::field_reader;
using arch::json;

// Multimodal wrappers: the outer model_type and the text model it wraps
// (used when text_config omits model_type).
const std::vector<std::pair<std::string, std::string>>& wrappers() {
  static const std::vector<std::pair<std::string, std::string>> list = {
      {"gemma3", "gemma3_text"},         {"gemma4", "gemma4_text"},     {"qwen3_5", "qwen3_5_text"},
      {"qwen3_5_moe", "qwen3_5_moe_text"}, {"qwen3_vl", "qwen3_vl_text"}, {"qwen3_vl_moe", "qwen3_vl_moe_text"},
      {"llama4", "llama4_text"},         {"mistral3", "mistral"},        {"kimi_k25", "deepseek_v3"},
      {"kimi_k3", "kimi_linear"},        {"minimax_m3_vl", "minimax_m3"}};
  return list;
}

std::string default_text_type(const std::string& wrapper) {
  for (const auto& [outer, text] : wrappers())
    if (outer == wrapper) return text;
  return "";
}

// The vision tower of a multimodal wrapper, from its vision_config.
void attach_vision(const std::string& wrapper, const json& root, const std::string& where, model_spec& m) {
  if (!root.contains("vision_config") || !root.at("vision_config").is_object()) return;
  const field_reader vc(root.at("vision_config"), where + ": vision_config");
  if (wrapper == "qwen3_vl" || wrapper == "qwen3_vl_moe") {
    arch::qwen3_vision(vc, m.hidden_size, 3, m);
  } else if (wrapper == "qwen3_5" || wrapper == "qwen3_5_moe") {
    arch::qwen3_vision(vc, m.hidden_size, 0, m);
  } else if (wrapper == "gemma3") {
    arch::siglip_vision(vc, m.hidden_size, m);
  } else if (wrapper == "mistral3") {
    arch::pixtral_vision(vc, field_reader(root, where), m.hidden_size, m);
  } else if (wrapper == "llama4") {
    arch::llama4_vision(vc, m.hidden_size, m);
  } else if (wrapper == "gemma4") {
    arch::gemma4_vision(vc, m.hidden_size, m);
  } else if (wrapper == "kimi_k25" || wrapper == "kimi_k3") {
    arch::moonvit_vision(vc, m.hidden_size, wrapper == "kimi_k3", m);
  } else if (wrapper == "minimax_m3_vl") {
    arch::clip_vision(vc, field_reader(root, where), m.hidden_size, m);
  } else {
    m.notes.push_back(fmt::format("the {} vision tower (vision_config) is not counted", wrapper));
  }
}

const arch::family* find_family(const std::string& type) {
  for (const auto& f : arch::families())
    if (type == f.model_type) return &f;
  return nullptr;
}

}  // namespace

std::vector<std::string> supported_model_types() {
  std::vector<std::string> out;
  for (const auto& f : arch::families()) out.emplace_back(f.model_type);
  return out;
}

std::vector<std::pair<std::string, std::string>> supported_families() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& f : arch::families()) out.emplace_back(f.model_type, f.variant);
  for (const auto& [outer, text] : wrappers()) out.emplace_back(outer, "multimodal wrapper of " + text);
  return out;
}

model_spec parse_hf_config(std::string_view json_text, std::string_view name, std::string_view where,
                           std::optional<std::string_view> quant_config_text) {
  const json root = detail::parse_json_text(detail::python_literals_as_null(json_text), where);
  if (!root.is_object()) throw input_error(fmt::format("{}: the top level must be a JSON object", where));
  const field_reader outer(root, std::string(where));
  const std::string outer_type = outer.string_or("model_type", "");

  json text = root;
  bool wrapped = false;
  if (outer.has("text_config")) {
    // Multimodal checkpoints describe the language model in text_config.
    text = outer.object("text_config");
    wrapped = true;
    if (!text.contains("model_type") || text.at("model_type").is_null()) {
      const std::string t = default_text_type(outer_type);
      if (t.empty()) outer.fail("text_config", fmt::format("has no model_type and '{}' is not a known multimodal wrapper", outer_type));
      text["model_type"] = t;
    }
  }
  const field_reader cfg(text, wrapped ? std::string(where) + ": text_config" : std::string(where));
  const std::string type = cfg.string_or("model_type", "");
  if (type.empty()) cfg.fail("model_type", "is missing");
  const arch::family* fam = find_family(type);
  if (!fam) {
    const std::vector<std::string> types = supported_model_types();
    std::vector<std::pair<std::size_t, std::string>> ranked;
    for (const auto& t : types) ranked.emplace_back(edit_distance(type, t), t);
    std::sort(ranked.begin(), ranked.end());
    std::string closest;
    for (std::size_t i = 0; i < std::min<std::size_t>(3, ranked.size()); ++i)
      closest += (i ? ", " : "") + ranked[i].second;
    cfg.fail("model_type", fmt::format("'{}' is not supported (closest: {}; `gpucal models --families` lists all {}; a "
                                       "config.json of a supported family works under any name)",
                                       type, closest, types.size()));
  }

  model_spec m;
  m.name = std::string(name);
  m.source = std::string(where);
  m.model_type = type;
  m.family = fam->variant;
  arch::config_view v{root, cfg, std::string(where), wrapped, fam->variant};
  fam->fn(v, m);
  if (m.layers.empty()) cfg.fail("num_hidden_layers", "gives no layers");
  if (wrapped) attach_vision(outer_type, root, std::string(where), m);

  std::optional<json> hf_quant;
  if (quant_config_text) {
    hf_quant = detail::parse_json_text(*quant_config_text, std::string(where) + " (hf_quant_config.json)");
    if (!hf_quant->is_object()) throw input_error(fmt::format("{} (hf_quant_config.json): the top level must be a JSON object", where));
  }
  // Wrappers keep quantization_config on the outer object or in text_config.
  const field_reader& qcfg = wrapped && !cfg.has("quantization_config") ? outer : cfg;
  m.quantization = arch::read_quantization(qcfg, m.torch_dtype, hf_quant, std::string(where));
  return m;
}

}  // namespace gpucal::model
