// The reference engine's forward on the host, in double, rounding to bf16
// (or quantizing to fp8) exactly where the device forward stores bf16 (or
// fp8): the GPU test compares the device engine's logits with it, and the
// CPU tests check it against a dense causal forward written independently.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "gpucal/engine/engine_model.hpp"
#include "gpucal/engine/forward_batch.hpp"
#include "gpucal/kernels/int4_pack.hpp"

namespace gpucal::engine {

/// One linear weight [rows][cols] as the device stores it.
struct host_linear {
  std::int64_t rows = 0, cols = 0;
  std::vector<float> values;  ///< bf16: bf16 values; fp8: e4m3 code values (empty for w4a16)
  float scale = 1;            ///< fp8: per-tensor scale (weight = value x scale)
  std::optional<kernels::int4_weights> int4;  ///< w4a16

  /// The weight the forward multiplies by, [rows][cols].
  std::vector<float> effective() const;
};

struct host_layer {
  std::vector<float> input_norm, post_attention_norm;  ///< [hidden], bf16 values
  host_linear qkv, o, gate_up, down;
  std::vector<float> qkv_bias;                         ///< [qkv_width] bf16 values, empty without a bias
};

struct host_weights {
  std::vector<float> embed;       ///< [vocab][hidden] bf16 values
  std::vector<float> final_norm;  ///< [hidden]
  std::vector<float> lm_head;     ///< [vocab][hidden]; empty when tied to embed
  std::vector<host_layer> layers;
};

/// Random weights (never zeros) whose products keep activations of order one:
/// linear weights uniform in +-sqrt(3 / cols) (variance 1 / cols) stored in
/// the model's format, norms uniform in [0.8, 1.2], embeddings in +-1,
/// biases in +-0.1.
host_weights random_host_weights(const engine_model& m, std::uint64_t seed);

/// Host forward over a paged KV cache of `num_blocks` blocks of `block_size` tokens per layer.
class host_forward {
public:
  host_forward(engine_model m, host_weights w, std::int64_t num_blocks, std::int64_t block_size);

  /// Runs one step: writes the batch's K and V into the cache and returns the
  /// logits of the sampled rows, [sample_rows][vocab], bf16 values.
  std::vector<float> forward(const forward_batch& b);
  const engine_model& model() const { return m_; }

private:
  std::vector<double> linear(const std::vector<double>& x, std::int64_t rows, const host_linear& w,
                             const std::vector<float>& effective) const;

  engine_model m_;
  host_weights w_;
  std::int64_t num_blocks_, block_size_;
  std::vector<double> inv_freq_;
  std::vector<std::vector<float>> effective_;     // per layer: qkv, o, gate_up, down
  std::vector<std::vector<double>> k_cache_, v_cache_;  // per layer [num_blocks][block_size][kv_heads][head_dim]
};

/// Rounds every element to bf16.
void round_bf16(std::vector<double>& v);

}  // namespace gpucal::engine
