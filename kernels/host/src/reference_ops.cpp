// Host references for the layer kernels and paged attention (see reference_ops.hpp).
#include "gpucal/kernels/reference_ops.hpp"

#include <cmath>
#include <numbers>
#include <stdexcept>

namespace gpucal::kernels {

std::vector<double> rms_norm_ref(const std::vector<double>& x, const std::vector<double>& w, std::int64_t hidden,
                                 double eps) {
  if (hidden <= 0 || w.size() != static_cast<std::size_t>(hidden) || x.size() % static_cast<std::size_t>(hidden))
    throw std::invalid_argument("rms_norm_ref: sizes");
  std::vector<double> out(x.size());
  const std::size_t h = static_cast<std::size_t>(hidden);
  for (std::size_t t = 0; t < x.size() / h; ++t) {
    double ss = 0;
    for (std::size_t i = 0; i < h; ++i) ss += x[t * h + i] * x[t * h + i];
    const double inv = 1.0 / std::sqrt(ss / static_cast<double>(h) + eps);
    for (std::size_t i = 0; i < h; ++i) out[t * h + i] = x[t * h + i] * inv * w[i];
  }
  return out;
}

std::vector<double> silu_mul_ref(const std::vector<double>& gate_up, std::int64_t inter) {
  const std::size_t i2 = static_cast<std::size_t>(2 * inter);
  if (inter <= 0 || gate_up.size() % i2) throw std::invalid_argument("silu_mul_ref: sizes");
  const std::size_t rows = gate_up.size() / i2, n = static_cast<std::size_t>(inter);
  std::vector<double> out(rows * n);
  for (std::size_t t = 0; t < rows; ++t)
    for (std::size_t i = 0; i < n; ++i) {
      const double g = gate_up[t * i2 + i], u = gate_up[t * i2 + n + i];
      out[t * n + i] = g / (1.0 + std::exp(-g)) * u;
    }
  return out;
}

std::vector<double> rope_inv_freq(std::int64_t head_dim, double theta, const std::optional<llama3_rope_scaling>& scaling) {
  std::vector<double> f(static_cast<std::size_t>(head_dim / 2));
  for (std::size_t i = 0; i < f.size(); ++i)
    f[i] = std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
  if (!scaling) return f;
  const auto& s = *scaling;
  const double low_wavelen = s.original_max_position / s.low_freq_factor;
  const double high_wavelen = s.original_max_position / s.high_freq_factor;
  for (double& v : f) {
    const double wavelen = 2 * std::numbers::pi / v;
    if (wavelen < high_wavelen) continue;  // high frequencies unchanged
    if (wavelen > low_wavelen) {
      v /= s.factor;  // low frequencies stretched by the factor
    } else {
      const double smooth = (s.original_max_position / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      v = (1 - smooth) * v / s.factor + smooth * v;
    }
  }
  return f;
}

void rope_ref(std::vector<double>& x, const std::vector<std::int64_t>& positions, std::int64_t heads,
              std::int64_t head_dim, const std::vector<double>& inv_freq) {
  const std::size_t hd = static_cast<std::size_t>(head_dim), half = hd / 2, nh = static_cast<std::size_t>(heads);
  if (x.size() != positions.size() * nh * hd || inv_freq.size() != half) throw std::invalid_argument("rope_ref: sizes");
  for (std::size_t t = 0; t < positions.size(); ++t)
    for (std::size_t h = 0; h < nh; ++h) {
      double* v = &x[(t * nh + h) * hd];
      for (std::size_t i = 0; i < half; ++i) {
        const double a = static_cast<double>(positions[t]) * inv_freq[i];
        const double c = std::cos(a), s = std::sin(a), x0 = v[i], x1 = v[i + half];
        v[i] = x0 * c - x1 * s;
        v[i + half] = x1 * c + x0 * s;
      }
    }
}

std::vector<std::int32_t> argmax_ref(const std::vector<double>& logits, std::int64_t vocab) {
  const std::size_t v = static_cast<std::size_t>(vocab);
  if (vocab <= 0 || logits.size() % v) throw std::invalid_argument("argmax_ref: sizes");
  std::vector<std::int32_t> out(logits.size() / v);
  for (std::size_t r = 0; r < out.size(); ++r) {
    std::size_t best = 0;
    for (std::size_t i = 1; i < v; ++i)
      if (logits[r * v + i] > logits[r * v + best]) best = i;
    out[r] = static_cast<std::int32_t>(best);
  }
  return out;
}

std::vector<double> paged_attention_ref(const std::vector<double>& q, const std::vector<double>& k_cache,
                                        const std::vector<double>& v_cache,
                                        const std::vector<std::vector<std::int32_t>>& block_tables,
                                        const std::vector<std::int64_t>& context_lens, std::int64_t q_heads,
                                        std::int64_t kv_heads, std::int64_t head_dim, std::int64_t block_size,
                                        double scale) {
  const std::size_t batch = context_lens.size(), hd = static_cast<std::size_t>(head_dim);
  if (q.size() != batch * static_cast<std::size_t>(q_heads) * hd || block_tables.size() != batch || q_heads % kv_heads)
    throw std::invalid_argument("paged_attention_ref: sizes");
  const std::int64_t group = q_heads / kv_heads;
  // [block][slot][kv_head][dim]
  const auto at = [&](const std::vector<double>& cache, std::int64_t block, std::int64_t slot, std::int64_t kvh) {
    return &cache[static_cast<std::size_t>(((block * block_size + slot) * kv_heads + kvh) * head_dim)];
  };
  std::vector<double> out(q.size(), 0.0);
  for (std::size_t b = 0; b < batch; ++b)
    for (std::int64_t h = 0; h < q_heads; ++h) {
      const double* qv = &q[(b * static_cast<std::size_t>(q_heads) + static_cast<std::size_t>(h)) * hd];
      const std::int64_t kvh = h / group, len = context_lens[b];
      std::vector<double> scores(static_cast<std::size_t>(len));
      double mx = -INFINITY;
      for (std::int64_t t = 0; t < len; ++t) {
        const double* kv = at(k_cache, block_tables[b][static_cast<std::size_t>(t / block_size)], t % block_size, kvh);
        double s = 0;
        for (std::size_t d = 0; d < hd; ++d) s += qv[d] * kv[d];
        scores[static_cast<std::size_t>(t)] = s * scale;
        mx = std::max(mx, s * scale);
      }
      double denom = 0;
      for (double& s : scores) denom += (s = std::exp(s - mx));
      double* o = &out[(b * static_cast<std::size_t>(q_heads) + static_cast<std::size_t>(h)) * hd];
      for (std::int64_t t = 0; t < len; ++t) {
        const double* vv = at(v_cache, block_tables[b][static_cast<std::size_t>(t / block_size)], t % block_size, kvh);
        const double p = scores[static_cast<std::size_t>(t)] / denom;
        for (std::size_t d = 0; d < hd; ++d) o[d] += p * vv[d];
      }
    }
  return out;
}

}  // namespace gpucal::kernels
