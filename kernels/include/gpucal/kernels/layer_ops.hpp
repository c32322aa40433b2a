// Element-wise and row kernels of a decoder layer, bf16 in and out with FP32
// arithmetic: embedding gather, RMSNorm, residual add, SiLU x mul, rotary
// embedding (rotate-half, frequencies from rope_inv_freq, Llama 3 scaling
// included), and greedy argmax over logits.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace gpucal::kernels {

/// out[t] = table[ids[t]]: ids [tokens] int32, table [vocab][hidden].
void embedding_gather(const std::int32_t* ids, const void* table, void* out, int tokens, int hidden, cudaStream_t stream);
/// out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * w.
void rms_norm(const void* x, const void* w, void* out, int tokens, int hidden, float eps, cudaStream_t stream);
/// out = a + b over n elements.
void residual_add(const void* a, const void* b, void* out, std::int64_t n, cudaStream_t stream);
/// gate_up [tokens][2 inter] = [gate | up]; out [tokens][inter] = silu(gate) * up.
void silu_mul(const void* gate_up, void* out, int tokens, int inter, cudaStream_t stream);
/// In place on q [tokens][q_heads][head_dim] and k [tokens][kv_heads][head_dim]; positions [tokens];
/// inv_freq [head_dim / 2] float on the device.
void rope(void* q, void* k, const std::int32_t* positions, const float* inv_freq, int tokens, int q_heads,
          int kv_heads, int head_dim, cudaStream_t stream);
/// Splits a fused qkv [tokens][q_width + 2 kv_width] into q [tokens][q_width],
/// k and v [tokens][kv_width]; with `bias` (bf16 [q_width + 2 kv_width], or
/// null) each element is bf16(qkv + bias) first, as a separate bias add rounds.
void split_qkv(const void* qkv, const void* bias, void* q, void* k, void* v, int tokens, int q_width, int kv_width,
               cudaStream_t stream);
/// Dynamic per-tensor fp8 e4m3 quantization of n bf16 values: *scale =
/// max|x| / 448 (1 when every x is 0), out = e4m3(x / scale), saturating.
/// `scale` is one device float; it is written before the quantization reads it.
void quantize_fp8_per_tensor(const void* x, std::int64_t n, void* out, float* scale, cudaStream_t stream);
/// Version 2 of the row and element-wise ops (kernels/layer_ops.cu): 16-byte
/// accesses (8 bf16) where the width allows, the row kept in registers.
/// Fused residual add + RMSNorm: residual_out = bf16(x + residual), then
/// out = rms_norm(residual_out, w): the same two roundings as residual_add
/// followed by rms_norm, in one pass. Any hidden; rows wider than 16,384 or
/// not a multiple of 8 take a two-pass path. residual_out may be residual (in place).
void add_rms_norm_v2(const void* x, const void* residual, const void* w, void* residual_out, void* out, int tokens,
                     int hidden, float eps, cudaStream_t stream);
/// silu_mul with 16-byte accesses over all tokens at once (inter a multiple of 8; else silu_mul).
void silu_mul_v2(const void* gate_up, void* out, int tokens, int inter, cudaStream_t stream);
/// rope with each token's angles reduced once per frequency (in shared memory)
/// instead of once per head and pair. head_dim <= 1024.
void rope_v2(void* q, void* k, const std::int32_t* positions, const float* inv_freq, int tokens, int q_heads,
             int kv_heads, int head_dim, cudaStream_t stream);
/// ids[r] = argmax over logits[r] [rows][vocab] (bf16), the first index on ties.
void argmax(const void* logits, std::int32_t* ids, int rows, int vocab, cudaStream_t stream);

}  // namespace gpucal::kernels
