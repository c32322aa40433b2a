// W4A16 host packing: layout of the codes, bytes, and the dequantization
// error bound of group-wise INT4 (half a step inside the range).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "gpucal/kernels/int4_pack.hpp"
#include "gpucal/kernels/numeric.hpp"

namespace gk = gpucal::kernels;

namespace {

TEST(int4_pack, codes_are_packed_eight_per_word_along_k) {
  // One row, k = 10, group 16, symmetric; w = s x (c - 8) for chosen codes c with s = 1.
  const std::vector<float> w{-7, -6, -5, -4, -3, -2, -1, 0, 1, 7};
  const auto q = gk::quantize_int4(w, 1, 10, 16, true);
  EXPECT_EQ(q.words_per_row(), 2);
  EXPECT_EQ(q.groups(), 1);
  EXPECT_EQ(gk::bf16_bits_to_float(q.scales[0]), 1.0f);  // max |w| / 7
  EXPECT_EQ(q.packed[0], 0x87654321u);                   // codes 1..8 from the low nibble up
  EXPECT_EQ(q.packed[1], 0x000000F9u);                   // codes 9 and 15
  EXPECT_EQ(gk::dequantize_int4(q), w);
  EXPECT_EQ(q.bytes(), 2 * 4 + 1 * 2 + 1);
}

TEST(int4_pack, dequantization_error_is_within_half_a_step) {
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 0.02f);
  for (const bool symmetric : {true, false}) {
    for (const std::int64_t k : {128, 300, 4096}) {  // 300: a partial last group
      SCOPED_TRACE(::testing::Message() << "symmetric=" << symmetric << " k=" << k);
      const std::int64_t n = 17;
      std::vector<float> w(static_cast<std::size_t>(n * k));
      for (auto& v : w) v = dist(rng);
      const auto q = gk::quantize_int4(w, n, k, 128, symmetric);
      const auto d = gk::dequantize_int4(q);
      for (std::int64_t r = 0; r < n; ++r)
        for (std::int64_t c = 0; c < k; ++c) {
          const std::size_t i = static_cast<std::size_t>(r * k + c);
          const float s = gk::bf16_bits_to_float(q.scales[static_cast<std::size_t>(r * q.groups() + c / 128)]);
          // Half a step from rounding; the bf16-rounded scale may clip the extreme by under 1 %.
          ASSERT_LE(std::fabs(d[i] - w[i]), (symmetric ? 0.51f : 0.51f) * s + 0.01f * std::fabs(w[i])) << r << "," << c;
          ASSERT_GE(gk::int4_code(q, r, c), 0);
        }
    }
  }
}

TEST(int4_pack, rejects_bad_sizes) {
  EXPECT_THROW(gk::quantize_int4(std::vector<float>(10), 2, 6, 128, true), std::invalid_argument);
  EXPECT_THROW(gk::quantize_int4(std::vector<float>(12), 2, 6, 0, true), std::invalid_argument);
}

}  // namespace
