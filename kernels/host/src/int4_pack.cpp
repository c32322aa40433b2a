// INT4 group-wise quantization and packing (see int4_pack.hpp).
#include "gpucal/kernels/int4_pack.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "gpucal/kernels/numeric.hpp"

namespace gpucal::kernels {

std::int64_t int4_weights::bytes() const {
  return static_cast<std::int64_t>(packed.size() * 4 + scales.size() * 2 + zeros.size());
}

int4_weights quantize_int4(const std::vector<float>& w, std::int64_t n, std::int64_t k, std::int64_t group,
                           bool symmetric) {
  if (n <= 0 || k <= 0 || group <= 0 || w.size() != static_cast<std::size_t>(n * k))
    throw std::invalid_argument("quantize_int4: sizes do not match n, k, group");
  int4_weights q;
  q.n = n;
  q.k = k;
  q.group = group;
  q.symmetric = symmetric;
  q.packed.assign(static_cast<std::size_t>(n * q.words_per_row()), 0u);
  q.scales.resize(static_cast<std::size_t>(n * q.groups()));
  q.zeros.resize(static_cast<std::size_t>(n * q.groups()));
  for (std::int64_t r = 0; r < n; ++r) {
    for (std::int64_t g = 0; g < q.groups(); ++g) {
      const std::int64_t begin = g * group, end = std::min(k, begin + group);
      float lo = 0, hi = 0, amax = 0;
      for (std::int64_t c = begin; c < end; ++c) {
        const float v = w[static_cast<std::size_t>(r * k + c)];
        lo = std::min(lo, v);
        hi = std::max(hi, v);
        amax = std::max(amax, std::fabs(v));
      }
      float scale = symmetric ? amax / 7.0f : (hi - lo) / 15.0f;
      if (scale == 0) scale = 1;  // an all-zero group: any scale reproduces it
      scale = round_to_bf16(scale);
      const int zero = symmetric ? 8 : std::clamp(static_cast<int>(std::nearbyint(-lo / scale)), 0, 15);
      const std::size_t gi = static_cast<std::size_t>(r * q.groups() + g);
      q.scales[gi] = float_to_bf16_bits(scale);
      q.zeros[gi] = static_cast<std::uint8_t>(zero);
      for (std::int64_t c = begin; c < end; ++c) {
        const float v = w[static_cast<std::size_t>(r * k + c)];
        const int code = std::clamp(static_cast<int>(std::nearbyint(v / scale)) + zero, 0, 15);
        q.packed[static_cast<std::size_t>(r * q.words_per_row() + c / 8)] |= static_cast<std::uint32_t>(code) << (4 * (c % 8));
      }
    }
  }
  return q;
}

int int4_code(const int4_weights& q, std::int64_t row, std::int64_t col) {
  const std::uint32_t word = q.packed[static_cast<std::size_t>(row * q.words_per_row() + col / 8)];
  return static_cast<int>((word >> (4 * (col % 8))) & 0xFu);
}

std::vector<float> dequantize_int4(const int4_weights& q) {
  std::vector<float> w(static_cast<std::size_t>(q.n * q.k));
  for (std::int64_t r = 0; r < q.n; ++r)
    for (std::int64_t c = 0; c < q.k; ++c) {
      const std::size_t gi = static_cast<std::size_t>(r * q.groups() + c / q.group);
      w[static_cast<std::size_t>(r * q.k + c)] =
          static_cast<float>(int4_code(q, r, c) - q.zeros[gi]) * bf16_bits_to_float(q.scales[gi]);
    }
  return w;
}

}  // namespace gpucal::kernels
