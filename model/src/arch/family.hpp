// What every family mapping shares: the limits on config sizes, readers for
// the keys most families spell alike (with transformers' defaults), and the
// registry of model_type -> mapping. Each family lives in one file under
// families/ and turns its config.json keys into model_spec layers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "detail/json_fields.hpp"
#include "gpucal/model/limits.hpp"
#include "gpucal/model/model_spec.hpp"

namespace gpucal::model::arch {

using detail::field_reader;
using detail::json;

// The bounds on sizes read from a config (gpucal/model/limits.hpp).
inline constexpr std::int64_t max_layers = limits::layers;
inline constexpr std::int64_t max_width = limits::width;
inline constexpr std::int64_t max_heads = limits::heads;
inline constexpr std::int64_t max_vocab = limits::vocab;
inline constexpr std::int64_t max_experts = limits::experts;
inline constexpr std::int64_t max_context = limits::context;

/// The view a family reads: `cfg` is the text model's object (text_config
/// for multimodal wrappers), `root` the whole config.json.
struct config_view {
  const json& root;
  field_reader cfg;
  std::string where;
  bool wrapped = false;  ///< cfg is the root's text_config
  std::string variant;   ///< the family's name for this model_type (e.g. "qwen3" for qwen3_vl_text)
};

using family_fn = void (*)(const config_view& v, model_spec& m);

struct family {
  const char* model_type;  ///< as config.json spells it (the text model's, for wrappers)
  const char* variant;     ///< what the mapping reads it as, e.g. "qwen3" for qwen3_vl_text
  family_fn fn;
};

/// Every model_type gpucal reads, in the order `gpucal models` lists families.
const std::vector<family>& families();

// ---- shared readers (family_common.cpp) ----

struct base_defaults {
  std::optional<std::int64_t> vocab_size;               ///< the config class's default when the key is omitted
  std::optional<std::int64_t> max_position_embeddings;
  bool tie_word_embeddings = false;                     ///< the config class's default
};

/// A base_defaults filled by `fill` (spares call sites the designated
/// initializers GCC warns about when they leave members out).
template <typename Fill>
base_defaults arch_defaults(Fill fill) {
  base_defaults d;
  fill(d);
  return d;
}

/// hidden_size, vocab_size, max_position_embeddings (and the context vLLM
/// derives from rope_scaling), torch_dtype, tie_word_embeddings, rope_theta,
/// rms_norm_eps and llama3 rope scaling. Returns num_hidden_layers.
std::int64_t read_base(const config_view& v, model_spec& m, const base_defaults& d = {});

/// num_attention_heads, num_key_value_heads (default: heads), head_dim
/// (default: hidden / heads). Checks that KV heads divide the heads.
attention_spec read_attention(const field_reader& cfg, std::int64_t hidden);

/// Per-layer kinds from a `layer_types` list whose entries are in `allowed`;
/// nullopt when the key is absent. Errors name the entry.
std::optional<std::vector<std::string>> read_layer_types(const field_reader& cfg, std::int64_t layers,
                                                         const std::vector<std::string>& allowed);

/// A list of layer indices (e.g. mlp_only_layers), each in [0, layers).
std::vector<std::int64_t> read_layer_indices(const field_reader& cfg, const char* key, std::int64_t layers);

/// Layers made of `attention` and a dense gated MLP of `intermediate`.
std::vector<layer_spec> dense_layers(std::int64_t layers, const attention_spec& attention, std::int64_t intermediate,
                                     int norms = 2);

/// `cfg` with every key of `defaults` it lacks (or holds as null) filled in;
/// the filled keys are appended to `filled`. For config classes whose
/// defaults fill keys a published config.json omits.
json with_defaults(const json& cfg, const json& defaults, std::vector<std::string>& filled);

/// `v`'s text config with the config class's `defaults` filled in where it
/// lacks them, and a note naming the class and the keys filled.
json with_class_defaults(const config_view& v, json defaults, const char* config_class, model_spec& m);

/// Routed-expert counts and width: `experts_key`, `top_k_key`, `width_key`
/// (a default of 0 makes the key required). Checks top-k <= experts.
moe_spec read_moe(const field_reader& cfg, const char* experts_key, const char* top_k_key, const char* width_key,
                  std::int64_t experts_default = 0, std::int64_t top_k_default = 0, std::int64_t width_default = 0);

/// DeepSeek-style multi-head latent attention keys (q_lora_rank optional).
mla_spec read_mla(const field_reader& cfg);

/// What an MTP module adds to its decoder layer to join the embedding and
/// the hidden state: enorm, hnorm and eh_proj [hidden, 2 x hidden].
std::vector<extra_tensor> mtp_join(std::int64_t hidden, shard eh_split = shard::replicated);

/// Makes layer i sliding-window where `sliding[i]` holds.
void apply_sliding(std::vector<layer_spec>& layers, const std::vector<bool>& sliding, std::int64_t window);

/// The quantization of a checkpoint: config.json's quantization_config and,
/// when given, hf_quant_config.json (ModelOpt). nullopt = unquantized.
std::optional<quant_spec> read_quantization(const field_reader& cfg, dtype model_dtype,
                                            const std::optional<json>& hf_quant_config, const std::string& where);

// ---- vision towers (vision.cpp): tensors appended to m.vision ----

void qwen3_vision(const field_reader& vc, std::int64_t text_hidden, std::int64_t deepstack_default, model_spec& m);
void siglip_vision(const field_reader& vc, std::int64_t text_hidden, model_spec& m);
void pixtral_vision(const field_reader& vc, const field_reader& outer, std::int64_t text_hidden, model_spec& m);
void llama4_vision(const field_reader& vc, std::int64_t text_hidden, model_spec& m);
void gemma4_vision(const field_reader& vc, std::int64_t text_hidden, model_spec& m);
void moonvit_vision(const field_reader& vc, std::int64_t text_hidden, bool k3, model_spec& m);
void clip_vision(const field_reader& vc, const field_reader& outer, std::int64_t text_hidden, model_spec& m);

// ---- the families (families/*.cpp) ----

void llama_family(const config_view& v, model_spec& m);        // llama, mistral, qwen2, qwen3, granite, mimo, olmo2...
void phi3_family(const config_view& v, model_spec& m);
void phi_family(const config_view& v, model_spec& m);
void gemma_family(const config_view& v, model_spec& m);        // gemma, gemma2, gemma3_text
void qwen_moe_family(const config_view& v, model_spec& m);     // qwen2_moe, qwen3_moe
void mixtral_family(const config_view& v, model_spec& m);
void deepseek_family(const config_view& v, model_spec& m);     // deepseek_v2/v3/v32, kimi_k2, glm_moe_dsa
void qwen3_5_family(const config_view& v, model_spec& m);      // qwen3_5_text, qwen3_5_moe_text (Gated DeltaNet hybrid)
void nemotron_h_family(const config_view& v, model_spec& m);   // nemotron_h (Mamba-2 hybrid)
void gpt_oss_family(const config_view& v, model_spec& m);
void llama4_family(const config_view& v, model_spec& m);       // llama4_text
void gemma4_family(const config_view& v, model_spec& m);       // gemma4_text
void nemotron_nas_family(const config_view& v, model_spec& m); // nemotron-nas (DeciLM)
void minimax_family(const config_view& v, model_spec& m);      // minimax_m2, minimax_m3
void mimo_v2_family(const config_view& v, model_spec& m);      // mimo_v2_flash
void step3p7_family(const config_view& v, model_spec& m);      // step3p7 (flat) and its text model
void kimi_linear_family(const config_view& v, model_spec& m);  // kimi_linear (Kimi K3's text model)
void deepseek_v4_family(const config_view& v, model_spec& m);  // deepseek_v4 (and sgl-project's deepseek_ref)

}  // namespace gpucal::model::arch
