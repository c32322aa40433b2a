// Reference GEMMs and the benchmark shape tables (see gemm_reference.hpp).
#include "gpucal/kernels/gemm_reference.hpp"

#include <stdexcept>

namespace gpucal::kernels {

namespace {

void check_sizes(std::size_t x, std::size_t w, std::int64_t m, std::int64_t n, std::int64_t k) {
  if (m < 0 || n < 0 || k < 0 || x != static_cast<std::size_t>(m * k) || w != static_cast<std::size_t>(n * k))
    throw std::invalid_argument("reference_gemm_tn: operand sizes do not match m, n, k");
}

}  // namespace

void reference_gemm_tn(const std::vector<double>& x, const std::vector<double>& w, std::vector<double>& d,
                       std::int64_t m, std::int64_t n, std::int64_t k, double alpha) {
  check_sizes(x.size(), w.size(), m, n, k);
  d.assign(static_cast<std::size_t>(m * n), 0.0);
  for (std::int64_t i = 0; i < m; ++i) {
    const double* xr = &x[static_cast<std::size_t>(i * k)];
    for (std::int64_t j = 0; j < n; ++j) {
      const double* wr = &w[static_cast<std::size_t>(j * k)];
      double acc = 0;
      for (std::int64_t p = 0; p < k; ++p) acc += xr[p] * wr[p];
      d[static_cast<std::size_t>(i * n + j)] = alpha * acc;
    }
  }
}

void reference_gemm_tn_int8(const std::vector<std::int8_t>& x, const std::vector<std::int8_t>& w,
                            std::vector<std::int32_t>& d, std::int64_t m, std::int64_t n, std::int64_t k) {
  check_sizes(x.size(), w.size(), m, n, k);
  d.assign(static_cast<std::size_t>(m * n), 0);
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      std::int64_t acc = 0;
      for (std::int64_t p = 0; p < k; ++p)
        acc += static_cast<std::int64_t>(x[static_cast<std::size_t>(i * k + p)]) * w[static_cast<std::size_t>(j * k + p)];
      d[static_cast<std::size_t>(i * n + j)] = static_cast<std::int32_t>(acc);
    }
}

const std::vector<layer_shape>& llm_layer_shapes() {
  // [N, K] per layer from the models' config.json values (model/catalog/models):
  // QKV = (heads + 2 x kv_heads) x head_dim by hidden; O = hidden by heads x head_dim;
  // gate|up = 2 x intermediate by hidden; down = hidden by intermediate.
  static const std::vector<layer_shape> shapes = {
      {"llama3-8b.qkv", 6144, 4096},      {"llama3-8b.o", 4096, 4096},
      {"llama3-8b.gate_up", 28672, 4096}, {"llama3-8b.down", 4096, 14336},
      {"llama3-70b.qkv", 10240, 8192},    {"llama3-70b.o", 8192, 8192},
      {"llama3-70b.gate_up", 57344, 8192}, {"llama3-70b.down", 8192, 28672},
      {"qwen2.5-7b.qkv", 4608, 3584},     {"qwen2.5-7b.o", 3584, 3584},
      {"qwen2.5-7b.gate_up", 37888, 3584}, {"qwen2.5-7b.down", 3584, 18944},
      {"square.8192", 8192, 8192},
  };
  return shapes;
}

std::vector<std::int64_t> token_sweep() {
  std::vector<std::int64_t> m;
  for (std::int64_t v = 1; v <= 16384; v *= 2) m.push_back(v);
  return m;
}

}  // namespace gpucal::kernels
