// The architecture of a decoder-only LLM as gpucal needs it: a list of
// layers, each a token mixer (softmax attention, MLA, linear attention or
// Mamba-2) and/or a feed-forward block (dense MLP or MoE), plus the
// embeddings, LM head, multi-token-prediction layers and vision tower the
// checkpoint stores. Each family maps its config.json keys to this list in
// one place (model/src/arch/families/); memory, throughput and the engine
// all read the same list.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gpucal/model/dtype.hpp"
#include "gpucal/model/quantization.hpp"
#include "gpucal/model/safetensors.hpp"

namespace gpucal::model {

enum class attention_window { full, sliding, chunked };

/// A sparse-attention indexer (DeepSeek Sparse Attention's lightning
/// indexer, MiniMax-M3's block indexer): its own key cache per token beside
/// the KV cache, scanned in full to pick the `topk` tokens attended to.
struct sparse_indexer_spec {
  std::int64_t num_heads = 0;
  std::int64_t head_dim = 0;
  std::int64_t topk = 0;
  std::int64_t cache_bytes_per_token = 0;  ///< per layer, whatever the KV dtype (fp8 keys + fp32 scales)
  std::int64_t q_input_dim = 0;            ///< input width of its query projection (q_lora_rank)
  std::int64_t local_tokens = 0;           ///< tokens attended besides the top-k (MiniMax-M3's local blocks)

  bool operator==(const sparse_indexer_spec&) const = default;
};

/// Softmax attention over a paged KV cache: MHA, GQA or MQA.
struct attention_spec {
  std::int64_t num_heads = 0;
  std::int64_t num_kv_heads = 0;
  std::int64_t head_dim = 0;    ///< q and k head size
  std::int64_t v_head_dim = 0;  ///< v head size (head_dim for most families)
  attention_window window = attention_window::full;
  std::int64_t window_tokens = 0;  ///< sliding window or chunk, in tokens (0 for full attention)
  bool qkv_bias = false;
  bool o_bias = false;
  bool qk_norm = false;      ///< per-head RMSNorm on q and k (qwen3, gemma3)
  bool sinks = false;        ///< one learned sink logit per head (gpt-oss)
  bool output_gate = false;  ///< q_proj also yields a sigmoid gate per output element (Qwen3.5, Qwen3-Next)
  bool k_eq_v = false;       ///< the checkpoint stores no v_proj: values are the keys (Gemma 4 global layers)
  bool kv_shared = false;    ///< no k/v projections and no cache of its own: reads an earlier layer's (Gemma 4 E2B/E4B)
  std::optional<sparse_indexer_spec> indexer;  ///< block-sparse attention over the indexer's top-k (MiniMax-M3)

  bool operator==(const attention_spec&) const = default;
};

/// Multi-head latent attention (DeepSeek-V2/V3 and descendants).
struct mla_spec {
  std::int64_t num_heads = 0;
  std::int64_t q_lora_rank = 0;  ///< 0 = no low-rank query path (q_proj directly)
  std::int64_t kv_lora_rank = 0;
  std::int64_t qk_nope_head_dim = 0;
  std::int64_t qk_rope_head_dim = 0;
  std::int64_t v_head_dim = 0;
  std::optional<sparse_indexer_spec> indexer;  ///< DSA (DeepSeek-V3.2, GLM-5)
  bool shared_indexer = false;                 ///< reuses the previous indexer's top-k (GLM-5.2): no indexer weights or cache
  bool output_gate = false;                    ///< a sigmoid gate on the attention output (Kimi K3)

  bool operator==(const mla_spec&) const = default;
};

enum class linear_attention_kind { gated_deltanet, kimi_delta };

/// Linear attention with a fixed recurrent state per request (Gated
/// DeltaNet, Kimi Delta Attention) and a short causal convolution.
struct linear_attention_spec {
  linear_attention_kind kind = linear_attention_kind::gated_deltanet;
  bool full_rank_gate = false;  ///< KDA: a full-rank output gate g_proj instead of g_a/g_b
  bool fp32_decay_and_norm = false;  ///< A_log and the gated norm's weight stored in fp32 (Qwen3.5 checkpoints)
  std::int64_t num_k_heads = 0;
  std::int64_t num_v_heads = 0;
  std::int64_t head_k_dim = 0;
  std::int64_t head_v_dim = 0;
  std::int64_t conv_kernel = 0;
  dtype state_dtype = dtype::float32;  ///< recurrent state (the convolution state is in the model dtype)

  bool operator==(const linear_attention_spec&) const = default;
};

/// Mamba-2 selective state space mixer.
struct mamba2_spec {
  std::int64_t num_heads = 0;
  std::int64_t head_dim = 0;
  std::int64_t n_groups = 0;
  std::int64_t state_size = 0;
  std::int64_t conv_kernel = 0;
  bool conv_bias = true;
  bool proj_bias = false;
  dtype state_dtype = dtype::float32;  ///< SSM state (the convolution state is in the model dtype)
  std::int64_t intermediate() const { return num_heads * head_dim; }

  bool operator==(const mamba2_spec&) const = default;
};

/// DeepSeek-V4's attention: one shared K=V head per token (head_dim wide)
/// over a sliding window on every layer, plus, every compress_ratio tokens,
/// a compressed entry that later tokens attend to (all of them for heavily
/// compressed layers, the indexer's top-k for compressed sparse layers).
/// Queries come from a low-rank path, outputs through grouped low-rank
/// projections; hyper-connections keep hc_mult copies of the residual.
struct compressed_mla_spec {
  std::int64_t num_heads = 0;
  std::int64_t head_dim = 0;
  std::int64_t rope_dim = 0;
  std::int64_t q_lora_rank = 0;
  std::int64_t o_lora_rank = 0;
  std::int64_t o_groups = 1;
  std::int64_t window = 0;          ///< sliding window every layer keeps
  std::int64_t compress_ratio = 0;  ///< 0: window only; 4: compressed sparse (with indexer); 128: heavily compressed
  std::optional<sparse_indexer_spec> indexer;
  std::int64_t hc_mult = 1;

  bool operator==(const compressed_mla_spec&) const = default;
};

enum class mixer_kind { none, attention, mla, linear_attention, mamba2, compressed_mla };

enum class mlp_activation { gated, plain };  ///< gated: act(gate) * up (SwiGLU); plain: act(up) (relu2, GELU)

struct mlp_spec {
  std::int64_t intermediate_size = 0;
  mlp_activation activation = mlp_activation::gated;
  bool bias = false;

  bool operator==(const mlp_spec&) const = default;
};

struct moe_spec {
  std::int64_t num_experts = 0;        ///< routed experts
  std::int64_t experts_per_token = 0;  ///< top-k
  std::int64_t expert_intermediate_size = 0;
  std::int64_t shared_intermediate_size = 0;  ///< total width of the shared expert(s); 0 = none
  mlp_activation activation = mlp_activation::gated;
  bool shared_expert_gate = false;  ///< qwen2_moe/qwen3.5: a sigmoid gate (hidden -> 1) on the shared expert
  bool router_bias = false;         ///< a bias per expert on the router (e_score_correction_bias or a plain bias)
  bool expert_bias = false;         ///< biases on every expert's projections (gpt-oss)
  std::int64_t latent_size = 0;     ///< routed experts work in a latent of this width, with down/up projections around them (0 = hidden)
  bool latent_norm = false;         ///< an RMSNorm on the latent (Kimi K3)

  bool operator==(const moe_spec&) const = default;
};

/// A weight that does not belong to one of the standard kinds, with how vLLM
/// shards it.
enum class shard { replicated, column, row };
enum class tensor_role { embedding, lm_head, attention, mlp, expert, shared_expert, router, norm, bias,
                         linear_attention, mamba, indexer, vision, mtp, other };

struct extra_tensor {
  std::string name;  ///< module path, "{i}" standing for the layer index
  tensor_role role = tensor_role::other;
  std::int64_t rows = 0;
  std::int64_t cols = 1;
  std::int64_t count = 1;  ///< instances (e.g. the blocks of a vision tower)
  shard split = shard::replicated;
  bool linear = false;  ///< a linear layer weight that a quantization format converts
  bool stored = true;   ///< false: the engine allocates it but the checkpoint has none (vLLM's V slot of a k_eq_v layer)

  bool operator==(const extra_tensor&) const = default;
};

struct layer_spec {
  mixer_kind mixer = mixer_kind::none;
  attention_spec attention;      ///< when mixer == attention
  mla_spec mla;                  ///< when mixer == mla
  linear_attention_spec linear;  ///< when mixer == linear_attention
  mamba2_spec mamba;             ///< when mixer == mamba2
  compressed_mla_spec compressed;  ///< when mixer == compressed_mla
  std::optional<mlp_spec> mlp;
  std::optional<moe_spec> moe;
  int norms = 2;                    ///< hidden-size norms of the layer
  std::vector<extra_tensor> extras;

  /// "attention", "sliding_attention", "chunked_attention", "mla", "dsa", "gated_deltanet", "kda", "mamba2",
  /// "swa_mla", "csa", "hca", "none"
  std::string_view mixer_name() const;

  bool operator==(const layer_spec&) const = default;
};

/// Module names inside a layer where a family's checkpoint departs from
/// the usual ones; quantization ignore lists match these names.
struct module_names {
  std::string layers = "model.layers";          ///< prefix of the decoder layers
  std::string mtp_layers;                       ///< prefix of the MTP layers, numbered from 0 ("" = after the decoder's, under `layers`)
  std::string attention = "self_attn";
  std::string linear_attention = "linear_attn";
  std::string mamba = "mixer";
  std::string mlp = "mlp";
  std::string moe = "mlp";                      ///< module holding router and experts ("" = the layer itself)
  std::string router = "gate";
  std::string experts = "experts";
  std::string shared_experts = "shared_experts";
};

struct model_spec {
  std::string name;        ///< catalog name or the config's path
  std::string model_type;  ///< Hugging Face model_type (of the text model for multimodal wrappers)
  std::string family;      ///< the family mapping that read it
  std::string source;      ///< where the config came from

  std::int64_t hidden_size = 0;
  std::int64_t vocab_size = 0;
  std::int64_t max_position_embeddings = 0;
  std::int64_t max_model_len = 0;  ///< longest context the config supports, as vLLM derives it
  bool tie_word_embeddings = false;
  int final_norms = 1;  ///< hidden-size norms after the last layer

  std::vector<layer_spec> layers;
  module_names naming;
  /// Multi-token-prediction layers the checkpoint stores; vLLM loads them
  /// only for speculative decoding.
  std::vector<layer_spec> mtp_layers;
  std::vector<extra_tensor> extras;  ///< model-level tensors beyond embeddings, final norm and LM head
  /// Vision (or audio) tower and projector of a multimodal checkpoint; vLLM
  /// loads them when it serves the multimodal architecture.
  std::vector<extra_tensor> vision;

  // Numerics of the forward, for gpucal's reference engine (absent when the config omits them).
  std::optional<double> rope_theta;    ///< rotary base, config's rope_theta
  std::optional<double> rms_norm_eps;  ///< config's rms_norm_eps
  /// rope_scaling with rope_type "llama3": factor, low_freq_factor, high_freq_factor,
  /// original_max_position_embeddings, in that order.
  std::optional<std::vector<double>> llama3_rope_scaling;

  // A pipeline stage (pipeline_stages) holds some layers and some of the ends.
  std::int64_t first_layer = 0;  ///< index of layers[0] in the whole model (module names use it)
  bool holds_embedding = true;   ///< the input embedding (first stage; the last too when tied)
  bool holds_lm_head = true;     ///< final norm, LM head, MTP layers and the sampler (last stage)

  dtype torch_dtype = dtype::bfloat16;    ///< the config's torch_dtype
  std::optional<quant_spec> quantization;  ///< the checkpoint's quantization
  std::vector<std::string> notes;          ///< what the parser left out or assumed
  /// A local checkpoint folder's tensors as its safetensors headers declare them.
  std::optional<checkpoint_files> on_disk;

  std::int64_t num_layers() const { return static_cast<std::int64_t>(layers.size()); }
  /// Layers whose mixer is `k` (attention layers of any window count as attention).
  std::int64_t count(mixer_kind k) const;
  std::int64_t num_moe_layers() const;
  bool has_moe() const { return num_moe_layers() > 0; }
  /// The first layer with this mixer, or nullptr.
  const layer_spec* first(mixer_kind k) const;
  /// Attention heads that tensor parallelism splits: the largest query-head
  /// count of any layer (attention, MLA, linear attention or Mamba heads).
  /// Every layer's heads must divide by tp (validate_tp).
  std::int64_t max_heads() const;
};

/// The stages of `m` under pipeline parallelism of `pp`, as vLLM splits them
/// (vllm/distributed/utils.py, get_pp_indices): num_layers / pp layers each,
/// the remainder one more to each stage before the last, from the last
/// backwards; the first stage holds the embedding and the vision tower, the
/// last the final norm, the LM head, the MTP layers and the sampler (with
/// tied embeddings it holds its own copy of the embedding, as vLLM's
/// models do). Throws input_error when pp is outside [1, number of layers].
std::vector<model_spec> pipeline_stages(const model_spec& m, int pp);

/// Families whose config.json gpucal understands (model_type values), for help and errors.
std::vector<std::string> supported_model_types();
/// (model_type, the family mapping that reads it), in the order gpucal lists them.
std::vector<std::pair<std::string, std::string>> supported_families();

/// Parses a Hugging Face config.json. Throws input_error naming the field
/// (prefixed with `where`) when a required field is missing, has the wrong
/// type or an unsupported value. `quant_config_text`, when given, is the
/// checkpoint's hf_quant_config.json (ModelOpt), read beside the config.
model_spec parse_hf_config(std::string_view json_text, std::string_view name, std::string_view where,
                           std::optional<std::string_view> quant_config_text = std::nullopt);

}  // namespace gpucal::model
