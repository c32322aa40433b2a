// The host references themselves, on cases worked by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "gpucal/kernels/reference_ops.hpp"

namespace gk = gpucal::kernels;

namespace {

TEST(reference_ops, rms_norm_and_silu_mul) {
  // x = [3, 4]: mean square 12.5; with w = [1, 2]: [3, 8] / sqrt(12.5).
  const auto y = gk::rms_norm_ref({3, 4}, {1, 2}, 2, 0);
  EXPECT_DOUBLE_EQ(y[0], 3 / std::sqrt(12.5));
  EXPECT_DOUBLE_EQ(y[1], 8 / std::sqrt(12.5));
  // silu(0) = 0; silu(2) x 3 = 2 / (1 + e^-2) x 3.
  const auto z = gk::silu_mul_ref({0, 2, 5, 3}, 2);
  EXPECT_DOUBLE_EQ(z[0], 0);
  EXPECT_DOUBLE_EQ(z[1], 2 / (1 + std::exp(-2.0)) * 3);
}

TEST(reference_ops, llama3_rope_scaling) {
  // Llama-3.1: theta 500000, head_dim 128, factor 8, low 1, high 4, original 8192.
  const auto plain = gk::rope_inv_freq(128, 500000, std::nullopt);
  const auto scaled = gk::rope_inv_freq(128, 500000, gk::llama3_rope_scaling{});
  EXPECT_DOUBLE_EQ(plain[0], 1.0);
  EXPECT_DOUBLE_EQ(scaled[0], 1.0);                  // wavelength 2 pi < 8192 / 4: unchanged
  EXPECT_DOUBLE_EQ(scaled[63], plain[63] / 8);       // wavelength > 8192: divided by the factor
  // In between, a blend: pick the first index whose wavelength lies in [2048, 8192].
  for (std::size_t i = 0; i < plain.size(); ++i) {
    const double wl = 2 * std::numbers::pi / plain[i];
    if (wl >= 2048 && wl <= 8192) {
      const double smooth = (8192 / wl - 1) / (4 - 1);
      EXPECT_DOUBLE_EQ(scaled[i], (1 - smooth) * plain[i] / 8 + smooth * plain[i]);
      break;
    }
  }
}

TEST(reference_ops, rope_rotates_pairs_of_halves) {
  // head_dim 4: pairs (0, 2) and (1, 3); position 1, inv_freq [pi/2, 0]: pair 0 turns 90 degrees.
  std::vector<double> x{1, 1, 0, 0};
  gk::rope_ref(x, {1}, 1, 4, {std::numbers::pi / 2, 0});
  EXPECT_NEAR(x[0], 0, 1e-15);
  EXPECT_NEAR(x[2], 1, 1e-15);
  EXPECT_DOUBLE_EQ(x[1], 1);
  EXPECT_DOUBLE_EQ(x[3], 0);
}

TEST(reference_ops, argmax_takes_the_first_maximum) {
  EXPECT_EQ(gk::argmax_ref({1, 3, 3, 2, -1, -1, 0, 0}, 4), (std::vector<std::int32_t>{1, 2}));
}

TEST(reference_ops, paged_attention_by_hand) {
  // One sequence, 2 tokens in block 1 (block 0 unused), one head of dim 2.
  // q = [1, 0]; k0 = [0, 0], k1 = [ln 3, 0] -> scores 0, ln 3 -> weights 1/4, 3/4.
  const std::vector<double> k{9, 9, 9, 9, 0, 0, std::log(3.0), 0};  // [block][slot][kvh][dim], block_size 2
  const std::vector<double> v{9, 9, 9, 9, 4, 8, 0, 4};
  const auto o = gk::paged_attention_ref({1, 0}, k, v, {{1}}, {2}, 1, 1, 2, 2, 1.0);
  EXPECT_DOUBLE_EQ(o[0], 0.25 * 4 + 0.75 * 0);
  EXPECT_DOUBLE_EQ(o[1], 0.25 * 8 + 0.75 * 4);
}

}  // namespace
