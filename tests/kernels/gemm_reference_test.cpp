// Host references and helpers of the GEMM benchmarks: a hand-worked product,
// FLOP and byte counts, the shape tables, and the comparison helper.
#include <gtest/gtest.h>

#include <cmath>

#include "gpucal/kernels/compare.hpp"
#include "gpucal/kernels/gemm_reference.hpp"

namespace gk = gpucal::kernels;

namespace {

TEST(gemm_reference, tn_product_by_hand) {
  // X = [[1, 2, 3], [4, 5, 6]] (2 x 3); W = [[1, 0, -1], [2, 1, 0]] (2 x 3).
  // D = X W^T = [[1 - 3, 2 + 2], [4 - 6, 8 + 5]] = [[-2, 4], [-2, 13]].
  const std::vector<double> x{1, 2, 3, 4, 5, 6}, w{1, 0, -1, 2, 1, 0};
  std::vector<double> d;
  gk::reference_gemm_tn(x, w, d, 2, 2, 3);
  EXPECT_EQ(d, (std::vector<double>{-2, 4, -2, 13}));
  gk::reference_gemm_tn(x, w, d, 2, 2, 3, 0.5);
  EXPECT_EQ(d, (std::vector<double>{-1, 2, -1, 6.5}));
  EXPECT_THROW(gk::reference_gemm_tn(x, w, d, 2, 3, 3), std::invalid_argument);
}

TEST(gemm_reference, int8_is_exact_at_the_extremes) {
  // K = 1000 products of -128 x -128 = 16,384,000: fits int32, needs 64-bit partial sums in no case.
  const std::vector<std::int8_t> x(1000, -128), w(1000, -128);
  std::vector<std::int32_t> d;
  gk::reference_gemm_tn_int8(x, w, d, 1, 1, 1000);
  EXPECT_EQ(d[0], 16'384'000);
}

TEST(gemm_reference, flops_and_bytes) {
  EXPECT_EQ(gk::gemm_flops(8192, 8192, 8192), 2.0 * 8192 * 8192 * 8192);
  // M = 1 decode against Llama-3-8B's gate|up: the weight dominates (28672 x 4096 x 2 bytes).
  EXPECT_EQ(gk::gemm_min_bytes(1, 28672, 4096, 2, 2, 2), 4096 * 2.0 + 28672.0 * 4096 * 2 + 28672 * 2.0);
}

TEST(gemm_reference, shape_tables) {
  const auto& shapes = gk::llm_layer_shapes();
  ASSERT_EQ(shapes.size(), 13u);
  EXPECT_EQ(shapes.front().name, "llama3-8b.qkv");
  EXPECT_EQ(shapes.front().n, (32 + 2 * 8) * 128);  // Llama-3-8B: 32 heads + 2 x 8 KV heads of 128
  EXPECT_EQ(shapes.back().n, 8192);
  const auto m = gk::token_sweep();
  EXPECT_EQ(m.front(), 1);
  EXPECT_EQ(m.back(), 16384);
  EXPECT_EQ(m.size(), 15u);
}

TEST(compare, reports_mismatches_nan_and_frobenius) {
  const std::vector<double> ref{1, 2, 3, 4};
  const auto ok = gk::compare_close({1.001, 2, 3, 4}, ref, 0, 1e-2);
  EXPECT_TRUE(ok.ok());
  EXPECT_NEAR(ok.rel_frobenius, 0.001 / std::sqrt(30.0), 1e-12);
  const auto bad = gk::compare_close({1, 2.5, std::nan(""), 4}, ref, 1e-3, 1e-3);
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.mismatches, 2u);
  EXPECT_EQ(bad.nans, 1u);
  EXPECT_EQ(bad.first_mismatches, (std::vector<std::size_t>{1, 2}));
  EXPECT_DOUBLE_EQ(bad.max_abs_error, 0.5);
  EXPECT_NE(bad.describe({1, 2.5, std::nan(""), 4}, ref).find("[1] got 2.5 expected 2"), std::string::npos);
}

}  // namespace
