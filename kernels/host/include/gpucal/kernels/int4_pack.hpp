// INT4 weight-only quantization (W4A16) on the host: group-wise quantize a
// row-major weight W[N, K] to 4-bit codes with one scale (and, asymmetric,
// one zero point) per `group` inputs of each row; pack eight codes per
// uint32 along K (code of element k = 8 j + i in bits 4 i .. 4 i + 3 of word
// j); dequantize back. The W4A16 kernel reads exactly this layout.
#pragma once

#include <cstdint>
#include <vector>

namespace gpucal::kernels {

struct int4_weights {
  std::int64_t n = 0, k = 0, group = 128;
  bool symmetric = true;
  std::vector<std::uint32_t> packed;   ///< [n][ceil(k / 8)]
  std::vector<std::uint16_t> scales;   ///< [n][groups] bf16 bits
  std::vector<std::uint8_t> zeros;     ///< [n][groups] zero points 0..15 (8 when symmetric)

  std::int64_t groups() const { return (k + group - 1) / group; }
  std::int64_t words_per_row() const { return (k + 7) / 8; }
  /// Device bytes: packed codes + bf16 scales + one byte per zero point.
  std::int64_t bytes() const;
};

/// Quantizes W[n, k] (row-major floats). Symmetric: code = round(w / s) + 8
/// with s = max|w| / 7 over the group (codes 1..15, zero point 8);
/// asymmetric: s = (max - min) / 15, zero = round(-min / s), codes 0..15.
/// Scales are rounded to bf16 before the codes are computed, so
/// dequantization with the stored scale is exactly what the kernel computes.
int4_weights quantize_int4(const std::vector<float>& w, std::int64_t n, std::int64_t k, std::int64_t group,
                           bool symmetric);

/// The 4-bit code of element (row, col).
int int4_code(const int4_weights& q, std::int64_t row, std::int64_t col);

/// W'[n, k] = (code - zero) x scale, as floats.
std::vector<float> dequantize_int4(const int4_weights& q);

}  // namespace gpucal::kernels
