// The decoder's row and element-wise ops, version 1 beside version 2 on the
// Llama-3-8B widths (hidden 4096, intermediate 14336, 32 + 8 heads of 128):
// residual add then RMSNorm (v1, two kernels) against the fused v2, SiLU x mul
// and RoPE, at decode (1 and 64 tokens) and prefill (4096 tokens) sizes.
// GB/s counts the bytes each op must move once (inputs read, outputs written).
//   gpucal_bench --benchmark_filter=bm_layer_ops
#include <cmath>
#include <iterator>
#include <string>
#include <vector>

#include "bench_env.hpp"
#include "gpucal/kernels/bandwidth.hpp"
#include "gpucal/kernels/device_buffer.hpp"
#include "gpucal/kernels/layer_ops.hpp"
#include "gpucal/kernels/reference_ops.hpp"

namespace gpucal::bench {

namespace {

constexpr int hidden = 4096, inter = 14336, q_heads = 32, kv_heads = 8, head_dim = 128;
constexpr const char* op_names[] = {"add_rms_norm", "silu_mul", "rope"};

// Bytes an op must move for `tokens` rows, 2 bytes per element.
double bytes_of(int op, double tokens) {
  switch (op) {
    case 0: return tokens * hidden * 2 * 4;      // x and residual in, residual and normed out
    case 1: return tokens * inter * 2 * 3;       // gate and up in, product out
    default: return tokens * (q_heads + kv_heads) * head_dim * 2 * 2;  // q and k read and written
  }
}
int inner_for(double bytes) { return bytes < 1e6 ? 50 : bytes < 1e8 ? 10 : 2; }

void bm_layer_ops_body(benchmark::State& state) {
  const int op = static_cast<int>(state.range(0)), version = static_cast<int>(state.range(1));
  const int tokens = static_cast<int>(state.range(2));
  const auto rows = static_cast<std::size_t>(tokens);
  kernels::device_buffer<std::uint16_t> a, b, w, c, d;
  kernels::device_buffer<std::int32_t> positions;
  kernels::device_buffer<float> inv_freq;
  if (op == 0) {
    a = kernels::device_buffer<std::uint16_t>(rows * hidden);
    b = kernels::device_buffer<std::uint16_t>(rows * hidden);
    c = kernels::device_buffer<std::uint16_t>(rows * hidden);
    d = kernels::device_buffer<std::uint16_t>(rows * hidden);
    w = kernels::device_buffer<std::uint16_t>(hidden);
    kernels::fill_random_bf16(a.data(), a.size(), -1, 1, 1, nullptr);
    kernels::fill_random_bf16(b.data(), b.size(), -1, 1, 2, nullptr);
    kernels::fill_random_bf16(w.data(), w.size(), 0.5f, 1.5f, 3, nullptr);
  } else if (op == 1) {
    a = kernels::device_buffer<std::uint16_t>(rows * 2 * inter);
    c = kernels::device_buffer<std::uint16_t>(rows * inter);
    kernels::fill_random_bf16(a.data(), a.size(), -2, 2, 4, nullptr);
  } else {
    a = kernels::device_buffer<std::uint16_t>(rows * q_heads * head_dim);
    b = kernels::device_buffer<std::uint16_t>(rows * kv_heads * head_dim);
    kernels::fill_random_bf16(a.data(), a.size(), -1, 1, 5, nullptr);
    kernels::fill_random_bf16(b.data(), b.size(), -1, 1, 6, nullptr);
    std::vector<std::int32_t> pos(rows);
    for (std::size_t i = 0; i < rows; ++i) pos[i] = static_cast<std::int32_t>(1000 + i);
    const std::vector<double> f = kernels::rope_inv_freq(head_dim, 500000, std::nullopt);  // Llama 3's theta, unscaled
    positions = kernels::to_device(pos);
    inv_freq = kernels::to_device(std::vector<float>(f.begin(), f.end()));
  }
  const auto launch = [&](int) {
    if (op == 0) {
      if (version == 1) {
        kernels::residual_add(a.data(), b.data(), c.data(), static_cast<std::int64_t>(rows) * hidden, nullptr);
        kernels::rms_norm(c.data(), w.data(), d.data(), tokens, hidden, 1e-5f, nullptr);
      } else {
        kernels::add_rms_norm_v2(a.data(), b.data(), w.data(), c.data(), d.data(), tokens, hidden, 1e-5f, nullptr);
      }
    } else if (op == 1) {
      version == 1 ? kernels::silu_mul(a.data(), c.data(), tokens, inter, nullptr)
                   : kernels::silu_mul_v2(a.data(), c.data(), tokens, inter, nullptr);
    } else {
      version == 1 ? kernels::rope(a.data(), b.data(), positions.data(), inv_freq.data(), tokens, q_heads, kv_heads, head_dim, nullptr)
                   : kernels::rope_v2(a.data(), b.data(), positions.data(), inv_freq.data(), tokens, q_heads, kv_heads, head_dim, nullptr);
    }
  };
  const double bytes = bytes_of(op, tokens);
  for (int i = 0; i < warmup_launches; ++i) launch(i);
  run_timed(state, inner_for(bytes), launch);
  state.counters["GB/s"] = benchmark::Counter(bytes / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(op_names[op]) + " v" + std::to_string(version));
}

// The cases, for the benchmark arguments and the plan alike: each op in both versions at each token count.
constexpr int ops[] = {0, 1, 2}, versions[] = {1, 2}, token_counts[] = {1, 64, 4096};

void layer_ops_args(benchmark::internal::Benchmark* b) {
  for (const int op : ops)
    for (const int version : versions)
      for (const int tokens : token_counts) b->Args({op, version, tokens});
}

void plan_layer_ops(std::vector<case_work>& out) {
  for (const int op : ops)
    for (std::size_t v = 0; v < std::size(versions); ++v)  // both versions move the same bytes
      for (const int tokens : token_counts) {
        const double bytes = bytes_of(op, tokens);
        out.push_back({"bm_layer_ops", "", static_cast<double>(warmup_launches + timed_iterations * inner_for(bytes)), 0, bytes, bytes});
      }
}

}  // namespace

const auto* const registered =
    register_case("bm_layer_ops", bm_layer_ops_body)->Apply(layer_ops_args)->ArgNames({"op", "v", "tokens"});
const int planned = register_planner(plan_layer_ops);

}  // namespace gpucal::bench
