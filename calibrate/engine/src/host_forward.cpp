// Host forward of the reference engine (see host_forward.hpp). The order of
// operations mirrors calibrate/engine/src/engine.cpp step by step.
#include "gpucal/engine/host_forward.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>

#include "gpucal/kernels/numeric.hpp"
#include "gpucal/kernels/reference_ops.hpp"

namespace gpucal::engine {

namespace {

std::vector<float> uniform_bf16(std::mt19937_64& rng, std::int64_t n, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (auto& x : v) {
    do x = kernels::round_to_bf16(d(rng));
    while (x == 0.0f);
  }
  return v;
}

host_linear random_linear(std::mt19937_64& rng, linear_format f, std::int64_t rows, std::int64_t cols) {
  host_linear l;
  l.rows = rows;
  l.cols = cols;
  const float a = std::sqrt(3.0f / static_cast<float>(cols));
  switch (f) {
    case linear_format::bf16:
      l.values = uniform_bf16(rng, rows * cols, -a, a);
      break;
    case linear_format::fp8: {
      // Codes uniform in +-448 x 0.9, scale mapping them to +-a.
      std::uniform_real_distribution<float> d(-403.0f, 403.0f);
      l.values.resize(static_cast<std::size_t>(rows * cols));
      for (auto& x : l.values) {
        do x = kernels::round_to_fp8_e4m3(d(rng));
        while (x == 0.0f);
      }
      l.scale = a / 403.0f;
      break;
    }
    case linear_format::w4a16: {
      std::uniform_real_distribution<float> d(-a, a);
      std::vector<float> w(static_cast<std::size_t>(rows * cols));
      for (auto& x : w) x = d(rng);
      l.int4 = kernels::quantize_int4(w, rows, cols, w4a16_group, /*symmetric=*/false);
      break;
    }
  }
  return l;
}

// y[t] = sum_i x[t][i] * w[n][i], rows of x of width k.
std::vector<double> matmul_nt(const std::vector<double>& x, std::int64_t rows, const std::vector<float>& w, std::int64_t n,
                              std::int64_t k) {
  std::vector<double> y(static_cast<std::size_t>(rows * n));
  for (std::int64_t t = 0; t < rows; ++t) {
    const double* xr = x.data() + t * k;
    for (std::int64_t j = 0; j < n; ++j) {
      const float* wr = w.data() + j * k;
      double s = 0;
      for (std::int64_t i = 0; i < k; ++i) s += xr[i] * wr[i];
      y[static_cast<std::size_t>(t * n + j)] = s;
    }
  }
  return y;
}

std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

}  // namespace

void round_bf16(std::vector<double>& v) {
  for (auto& x : v) x = kernels::round_to_bf16(static_cast<float>(x));
}

std::vector<float> host_linear::effective() const {
  if (int4) return kernels::dequantize_int4(*int4);
  std::vector<float> w(values);
  if (scale != 1.0f)
    for (auto& x : w) x *= scale;
  return w;
}

host_weights random_host_weights(const engine_model& m, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  host_weights w;
  w.embed = uniform_bf16(rng, m.vocab * m.hidden, -1, 1);
  for (std::int64_t l = 0; l < m.layers; ++l) {
    host_layer h;
    h.input_norm = uniform_bf16(rng, m.hidden, 0.8f, 1.2f);
    h.qkv = random_linear(rng, m.format, m.qkv_width(), m.hidden);
    if (m.qkv_bias) h.qkv_bias = uniform_bf16(rng, m.qkv_width(), -0.1f, 0.1f);
    h.o = random_linear(rng, m.format, m.hidden, m.q_width());
    h.post_attention_norm = uniform_bf16(rng, m.hidden, 0.8f, 1.2f);
    h.gate_up = random_linear(rng, m.format, 2 * m.intermediate, m.hidden);
    h.down = random_linear(rng, m.format, m.hidden, m.intermediate);
    w.layers.push_back(std::move(h));
  }
  w.final_norm = uniform_bf16(rng, m.hidden, 0.8f, 1.2f);
  if (!m.tie_embeddings) {
    const float a = std::sqrt(3.0f / static_cast<float>(m.hidden));
    w.lm_head = uniform_bf16(rng, m.vocab * m.hidden, -a, a);
  }
  return w;
}

host_forward::host_forward(engine_model m, host_weights w, std::int64_t num_blocks, std::int64_t block_size)
    : m_(std::move(m)), w_(std::move(w)), num_blocks_(num_blocks), block_size_(block_size) {
  if (static_cast<std::int64_t>(w_.layers.size()) != m_.layers)
    throw std::invalid_argument(fmt::format("host_forward: {} layers of weights for {} layers", w_.layers.size(), m_.layers));
  inv_freq_ = kernels::rope_inv_freq(m_.head_dim, m_.rope_theta, m_.rope_scaling);
  // The device computes inv_freq in double on the host and keeps it as float.
  for (auto& f : inv_freq_) f = static_cast<float>(f);
  for (const auto& l : w_.layers)
    for (const host_linear* p : {&l.qkv, &l.o, &l.gate_up, &l.down}) effective_.push_back(p->effective());
  const auto cache = static_cast<std::size_t>(num_blocks_ * block_size_ * m_.kv_width());
  k_cache_.assign(static_cast<std::size_t>(m_.layers), std::vector<double>(cache, 0.0));
  v_cache_ = k_cache_;
}

std::vector<double> host_forward::linear(const std::vector<double>& x, std::int64_t rows, const host_linear& w,
                                         const std::vector<float>& effective) const {
  std::vector<double> y;
  if (m_.format == linear_format::fp8) {
    // Dynamic per-tensor quantization of the activations: scale = absmax / 448.
    double absmax = 0;
    for (double v : x) absmax = std::max(absmax, std::abs(v));
    const float x_scale = absmax > 0 ? static_cast<float>(absmax / 448.0) : 1.0f;
    std::vector<double> xq(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) xq[i] = kernels::round_to_fp8_e4m3(static_cast<float>(x[i]) / x_scale);
    y = matmul_nt(xq, rows, w.values, w.rows, w.cols);
    const double s = static_cast<double>(x_scale) * static_cast<double>(w.scale);
    for (auto& v : y) v *= s;
  } else {
    y = matmul_nt(x, rows, effective, w.rows, w.cols);
  }
  round_bf16(y);
  return y;
}

std::vector<float> host_forward::forward(const forward_batch& b) {
  const std::int64_t T = b.tokens();
  const std::int64_t H = m_.hidden, hd = m_.head_dim, qh = m_.q_heads, kvh = m_.kv_heads;
  for (std::int64_t t = 0; t < T; ++t) {
    if (b.input_ids[t] < 0 || b.input_ids[t] >= m_.vocab)
      throw std::invalid_argument(fmt::format("host_forward: input_ids[{}] = {} outside the vocabulary", t, b.input_ids[t]));
    if (b.slot_mapping[t] < 0 || b.slot_mapping[t] >= num_blocks_ * block_size_)
      throw std::invalid_argument(fmt::format("host_forward: slot_mapping[{}] = {} outside the pool", t, b.slot_mapping[t]));
  }
  std::vector<double> x(static_cast<std::size_t>(T * H));
  for (std::int64_t t = 0; t < T; ++t)
    std::copy_n(w_.embed.begin() + b.input_ids[t] * H, H, x.begin() + t * H);

  std::vector<std::int64_t> positions(b.positions.begin(), b.positions.end());
  std::vector<std::vector<std::int32_t>> tables(static_cast<std::size_t>(T));
  std::vector<std::int64_t> context(b.context_lens.begin(), b.context_lens.end());
  for (std::int64_t t = 0; t < T; ++t) {
    const auto row = b.block_tables.begin() + t * b.max_blocks_per_seq;
    tables[static_cast<std::size_t>(t)].assign(row, row + (context[t] + block_size_ - 1) / block_size_);
  }

  for (std::int64_t l = 0; l < m_.layers; ++l) {
    const host_layer& L = w_.layers[static_cast<std::size_t>(l)];
    const auto* eff = &effective_[static_cast<std::size_t>(4 * l)];
    // Attention block.
    std::vector<double> h = kernels::rms_norm_ref(x, to_double(L.input_norm), H, m_.rms_eps);
    round_bf16(h);
    std::vector<double> qkv = linear(h, T, L.qkv, eff[0]);
    if (m_.qkv_bias) {
      for (std::int64_t t = 0; t < T; ++t)
        for (std::int64_t j = 0; j < m_.qkv_width(); ++j) qkv[t * m_.qkv_width() + j] += L.qkv_bias[j];
      round_bf16(qkv);
    }
    std::vector<double> q(static_cast<std::size_t>(T * m_.q_width())), k(static_cast<std::size_t>(T * m_.kv_width())),
        v(k.size());
    for (std::int64_t t = 0; t < T; ++t) {
      const auto row = qkv.begin() + t * m_.qkv_width();
      std::copy_n(row, m_.q_width(), q.begin() + t * m_.q_width());
      std::copy_n(row + m_.q_width(), m_.kv_width(), k.begin() + t * m_.kv_width());
      std::copy_n(row + m_.q_width() + m_.kv_width(), m_.kv_width(), v.begin() + t * m_.kv_width());
    }
    kernels::rope_ref(q, positions, qh, hd, inv_freq_);
    kernels::rope_ref(k, positions, kvh, hd, inv_freq_);
    round_bf16(q);
    round_bf16(k);
    auto& kc = k_cache_[static_cast<std::size_t>(l)];
    auto& vc = v_cache_[static_cast<std::size_t>(l)];
    for (std::int64_t t = 0; t < T; ++t) {
      std::copy_n(k.begin() + t * m_.kv_width(), m_.kv_width(), kc.begin() + b.slot_mapping[t] * m_.kv_width());
      std::copy_n(v.begin() + t * m_.kv_width(), m_.kv_width(), vc.begin() + b.slot_mapping[t] * m_.kv_width());
    }
    std::vector<double> attn = kernels::paged_attention_ref(q, kc, vc, tables, context, qh, kvh, hd, block_size_,
                                                             1.0 / std::sqrt(static_cast<double>(hd)));
    round_bf16(attn);
    std::vector<double> o = linear(attn, T, L.o, eff[1]);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] += o[i];
    round_bf16(x);
    // MLP block.
    h = kernels::rms_norm_ref(x, to_double(L.post_attention_norm), H, m_.rms_eps);
    round_bf16(h);
    std::vector<double> gu = linear(h, T, L.gate_up, eff[2]);
    std::vector<double> act = kernels::silu_mul_ref(gu, m_.intermediate);
    round_bf16(act);
    std::vector<double> d = linear(act, T, L.down, eff[3]);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] += d[i];
    round_bf16(x);
  }
  // Final norm and LM head on the sampled rows only.
  const auto R = static_cast<std::int64_t>(b.sample_rows.size());
  std::vector<double> rows(static_cast<std::size_t>(R * H));
  for (std::int64_t r = 0; r < R; ++r) std::copy_n(x.begin() + b.sample_rows[r] * H, H, rows.begin() + r * H);
  std::vector<double> hn = kernels::rms_norm_ref(rows, to_double(w_.final_norm), H, m_.rms_eps);
  round_bf16(hn);
  std::vector<double> logits = matmul_nt(hn, R, m_.tie_embeddings ? w_.embed : w_.lm_head, m_.vocab, H);
  round_bf16(logits);
  return {logits.begin(), logits.end()};
}

}  // namespace gpucal::engine
