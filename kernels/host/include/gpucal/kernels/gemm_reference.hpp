// Host references for the GEMM layout gpucal benchmarks: D[M,N] = X[M,K] .
// W[N,K]^T with both operands row-major ("TN" in cuBLAS terms: activations
// times a weight stored output-major, as every LLM linear layer is). FLOP
// and byte counts for GB/s and TFLOP/s, and the LLM layer shapes swept.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gpucal::kernels {

/// D = alpha x X . W^T in double. X is [m, k], W is [n, k], D is [m, n], row-major.
void reference_gemm_tn(const std::vector<double>& x, const std::vector<double>& w, std::vector<double>& d,
                       std::int64_t m, std::int64_t n, std::int64_t k, double alpha = 1.0);

/// Exact integer version for int8 operands.
void reference_gemm_tn_int8(const std::vector<std::int8_t>& x, const std::vector<std::int8_t>& w,
                            std::vector<std::int32_t>& d, std::int64_t m, std::int64_t n, std::int64_t k);

/// 2 m n k: one multiply and one add per term.
inline double gemm_flops(std::int64_t m, std::int64_t n, std::int64_t k) {
  return 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
}

/// Fewest bytes a GEMM moves: each operand read once, the output written once.
inline double gemm_min_bytes(std::int64_t m, std::int64_t n, std::int64_t k, double x_bytes, double w_bytes,
                             double d_bytes) {
  const double mm = static_cast<double>(m), nn = static_cast<double>(n), kk = static_cast<double>(k);
  return mm * kk * x_bytes + nn * kk * w_bytes + mm * nn * d_bytes;
}

/// One weight shape of a real layer: N outputs, K inputs.
struct layer_shape {
  std::string name;  ///< e.g. "llama3-8b.gate_up"
  std::int64_t n;
  std::int64_t k;
};

/// Shapes swept by the GEMM benchmarks: Llama-3-8B, Llama-3-70B (tp = 1) and
/// Qwen2.5-7B QKV, O, gate|up and down projections, plus square 8192.
const std::vector<layer_shape>& llm_layer_shapes();

/// M (tokens per step) swept: 1, 2, 4, ..., 16384.
std::vector<std::int64_t> token_sweep();

}  // namespace gpucal::kernels
