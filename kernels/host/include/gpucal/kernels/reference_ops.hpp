// Host references, in double, for the decoder-layer kernels and paged decode
// attention. Tensors are row-major std::vectors; the GPU tests compare each
// kernel with these, and the reference engine can run a host forward with them.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace gpucal::kernels {

/// out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * w, rows of `hidden`.
std::vector<double> rms_norm_ref(const std::vector<double>& x, const std::vector<double>& w, std::int64_t hidden,
                                 double eps);

/// gate_up[t] = [gate | up] of width 2 I; out[t] = silu(gate) * up, width I.
std::vector<double> silu_mul_ref(const std::vector<double>& gate_up, std::int64_t inter);

/// Llama 3's rope_scaling ("rope_type": "llama3").
struct llama3_rope_scaling {
  double factor = 8;
  double low_freq_factor = 1;
  double high_freq_factor = 4;
  double original_max_position = 8192;
};

/// inv_freq[i] = theta^(-2i / head_dim), i < head_dim / 2, rescaled per Llama 3
/// when `scaling` is given (transformers' _compute_llama3_parameters).
std::vector<double> rope_inv_freq(std::int64_t head_dim, double theta, const std::optional<llama3_rope_scaling>& scaling);

/// Rotary embedding in place, rotate-half (NeoX/Llama) style: x[t][h] of
/// `head_dim`, pairs (i, i + head_dim/2) rotated by positions[t] x inv_freq[i].
void rope_ref(std::vector<double>& x, const std::vector<std::int64_t>& positions, std::int64_t heads,
              std::int64_t head_dim, const std::vector<double>& inv_freq);

/// Index of the largest value of each row (first on ties).
std::vector<std::int32_t> argmax_ref(const std::vector<double>& logits, std::int64_t vocab);

/// Paged decode attention for one query token per sequence.
/// q: [batch][q_heads][head_dim]; the cache is [num_blocks][block_size][kv_heads][head_dim]
/// for K and for V (one layer); block_tables[b] lists sequence b's blocks;
/// q head h reads KV head h / (q_heads / kv_heads). Returns [batch][q_heads][head_dim].
std::vector<double> paged_attention_ref(const std::vector<double>& q, const std::vector<double>& k_cache,
                                        const std::vector<double>& v_cache,
                                        const std::vector<std::vector<std::int32_t>>& block_tables,
                                        const std::vector<std::int64_t>& context_lens, std::int64_t q_heads,
                                        std::int64_t kv_heads, std::int64_t head_dim, std::int64_t block_size,
                                        double scale);

}  // namespace gpucal::kernels
