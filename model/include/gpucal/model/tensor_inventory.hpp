// Every weight tensor of a model, grouped by kind, with its full shape and
// the shape one GPU holds under tensor parallelism. Parameter counts and
// weight bytes are both sums over this one list, so the two cannot disagree.
// The list is built from the model's layer kinds (model_spec.hpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gpucal/model/model_spec.hpp"

namespace gpucal::model {

std::string_view tensor_role_name(tensor_role r);

struct tensor_group {
  std::string name;            ///< e.g. "layers.*.self_attn.q_proj.weight"
  tensor_role role = tensor_role::other;
  std::int64_t count = 1;      ///< instances (layers x experts)
  std::int64_t rows = 0;       ///< full shape [rows, cols]; vectors have cols = 1
  std::int64_t cols = 1;
  std::int64_t rank_rows = 0;  ///< shape held by one GPU at the inventory's tp
  std::int64_t rank_cols = 1;
  bool linear = false;         ///< a linear layer weight that a quantization format converts
  double active_fraction = 1;  ///< share used per token (routed experts: top_k / num_experts)
  bool loaded = true;          ///< false: stored in the checkpoint, not loaded to serve (MTP layers)
  bool stored = true;          ///< false: allocated by the engine, absent from the checkpoint
  std::optional<dtype> fixed_dtype;  ///< stored in this dtype whatever the model dtype (fp32 gates and decays)
  /// Module path of one instance with "{i}" for the layer index, e.g.
  /// "model.layers.{i}.self_attn.q_proj"; quantization ignore lists match it.
  std::string module;
  std::vector<std::int64_t> layer_ids;  ///< layers the group spans (empty for model-level tensors)

  std::int64_t params() const { return count * rows * cols; }
  /// Instances per layer (experts), count / layers.
  std::int64_t per_layer() const;
};

struct tensor_inventory {
  int tp = 1;
  std::vector<tensor_group> groups;

  /// Parameters the engine loads (MTP layers excluded).
  std::int64_t total_params() const;
  /// Every parameter the checkpoint stores, MTP layers included (engine-only tensors excluded).
  std::int64_t checkpoint_params() const;
  /// Parameters a text token passes through (routed experts counted top_k of
  /// num_experts; vision towers and MTP layers left out).
  std::int64_t active_params() const;
};

/// vLLM pads the vocabulary of embeddings and LM head to a multiple of this
/// (VocabParallelEmbedding's DEFAULT_VOCAB_PADDING_SIZE) before splitting it.
inline constexpr std::int64_t vocab_padding = 64;

/// KV heads one GPU holds: kv_heads / tp, or 1 when tp > kv_heads (replicated).
std::int64_t kv_heads_per_rank(std::int64_t kv_heads, int tp);

/// Checks that `tp` can split the model: every layer's heads divisible by
/// tp, and KV heads divisible by tp or tp divisible by them. Throws
/// input_error naming --tensor-parallel-size.
void validate_tp(const model_spec& m, int tp);

/// Builds the inventory for `tp` GPUs (validate_tp first). Throws
/// input_error when a count overflows 64 bits.
tensor_inventory build_inventory(const model_spec& m, int tp);

}  // namespace gpucal::model
