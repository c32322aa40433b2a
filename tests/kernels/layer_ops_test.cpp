// GPU: decoder-layer kernels against the host references on random data.
// bf16 outputs: |got - ref| <= 1.6e-2 |ref| + 1e-3 (one bf16 rounding of an
// FP32 result, with headroom for fast exp); embedding gather and argmax exact.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "device_vectors.hpp"
#include "gpu_fixture.hpp"
#include "gpucal/kernels/compare.hpp"
#include "gpucal/kernels/layer_ops.hpp"
#include "gpucal/kernels/reference_ops.hpp"

namespace gk = gpucal::kernels;
using gpucal::test::from_device;
using gpucal::test::from_device_bf16;
using gpucal::test::random_bf16;
using gpucal::test::to_device;
using gpucal::test::to_device_bf16;

namespace {

class layer_ops_test : public gpucal::test::gpu_test {};

void expect_bf16_close(const std::vector<double>& got, std::vector<double> ref) {
  for (auto& r : ref) r = gk::round_to_bf16(static_cast<float>(r));
  const auto report = gk::compare_close(got, ref, 1e-3, 1.6e-2);
  EXPECT_TRUE(report.ok()) << report.describe(got, ref);
}

TEST_F(layer_ops_test, embedding_gather_is_exact) {
  const int vocab = 1000, hidden = 200, tokens = 37;
  const auto table = random_bf16(static_cast<std::size_t>(vocab) * hidden, 1);
  std::mt19937 rng(2);
  std::vector<std::int32_t> ids(tokens);
  for (auto& i : ids) i = static_cast<std::int32_t>(rng() % vocab);
  auto dt = to_device_bf16(table);
  auto di = to_device(ids);
  gk::device_buffer<std::uint16_t> out(static_cast<std::size_t>(tokens) * hidden);
  GPUCAL_CUDA_CHECK(cudaMemset(out.data(), 0xFF, out.bytes()));
  gk::embedding_gather(di.data(), dt.data(), out.data(), tokens, hidden, nullptr);
  const auto got = from_device_bf16(out);
  for (int t = 0; t < tokens; ++t)
    for (int h = 0; h < hidden; ++h)
      ASSERT_EQ(got[static_cast<std::size_t>(t * hidden + h)], table[static_cast<std::size_t>(ids[t]) * hidden + h]);
}

TEST_F(layer_ops_test, rms_norm_residual_silu) {
  const int tokens = 19, hidden = 4100, inter = 1500;  // not multiples of the block width
  const auto x = random_bf16(static_cast<std::size_t>(tokens) * hidden, 3, -3, 3);
  const auto w = random_bf16(hidden, 4, 0.5f, 1.5f);
  auto dx = to_device_bf16(x), dw = to_device_bf16(w);
  gk::device_buffer<std::uint16_t> out(x.size());
  GPUCAL_CUDA_CHECK(cudaMemset(out.data(), 0xFF, out.bytes()));
  gk::rms_norm(dx.data(), dw.data(), out.data(), tokens, hidden, 1e-5f, nullptr);
  expect_bf16_close(from_device_bf16(out), gk::rms_norm_ref(x, w, hidden, 1e-5));

  const auto y = random_bf16(x.size(), 5, -3, 3);
  auto dy = to_device_bf16(y);
  GPUCAL_CUDA_CHECK(cudaMemset(out.data(), 0xFF, out.bytes()));
  gk::residual_add(dx.data(), dy.data(), out.data(), static_cast<std::int64_t>(x.size()), nullptr);
  std::vector<double> sum(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) sum[i] = x[i] + y[i];
  expect_bf16_close(from_device_bf16(out), sum);

  const auto gu = random_bf16(static_cast<std::size_t>(tokens) * 2 * inter, 6, -4, 4);
  auto dgu = to_device_bf16(gu);
  gk::device_buffer<std::uint16_t> act(static_cast<std::size_t>(tokens) * inter);
  GPUCAL_CUDA_CHECK(cudaMemset(act.data(), 0xFF, act.bytes()));
  gk::silu_mul(dgu.data(), act.data(), tokens, inter, nullptr);
  expect_bf16_close(from_device_bf16(act), gk::silu_mul_ref(gu, inter));
}

// RoPE of one version on 9 tokens at positions up to 100,000, against the reference.
void check_rope(int version) {
  const int tokens = 9, q_heads = 8, kv_heads = 2, head_dim = 128;
  const auto inv = gk::rope_inv_freq(head_dim, 500000, gk::llama3_rope_scaling{});
  std::vector<float> inv_f(inv.begin(), inv.end());
  std::vector<double> inv_rounded(inv_f.begin(), inv_f.end());  // the kernel reads float frequencies
  const std::vector<std::int64_t> pos{0, 1, 2, 17, 100, 1000, 4095, 8191, 100000};
  std::vector<std::int32_t> pos32(pos.begin(), pos.end());
  auto q = random_bf16(static_cast<std::size_t>(tokens) * q_heads * head_dim, 7);
  auto k = random_bf16(static_cast<std::size_t>(tokens) * kv_heads * head_dim, 8);
  auto dq = to_device_bf16(q), dk = to_device_bf16(k);
  auto dpos = to_device(pos32);
  auto dinv = to_device(inv_f);
  (version == 1 ? gk::rope : gk::rope_v2)(dq.data(), dk.data(), dpos.data(), dinv.data(), tokens, q_heads, kv_heads, head_dim, nullptr);
  gk::rope_ref(q, pos, q_heads, head_dim, inv_rounded);
  gk::rope_ref(k, pos, kv_heads, head_dim, inv_rounded);
  expect_bf16_close(from_device_bf16(dq), q);
  expect_bf16_close(from_device_bf16(dk), k);
}

TEST_F(layer_ops_test, rope_with_llama3_scaling) { check_rope(1); }

TEST_F(layer_ops_test, v2_ops_match_the_references) {
  for (const int hidden : {4096, 8192, 4100, 20480}) {  // vector, vector, odd width, wider than 16,384
    SCOPED_TRACE(::testing::Message() << "hidden=" << hidden);
    const int tokens = 7;
    const auto x = random_bf16(static_cast<std::size_t>(tokens) * hidden, 11, -3, 3);
    const auto y = random_bf16(x.size(), 12, -3, 3);
    const auto w = random_bf16(static_cast<std::size_t>(hidden), 13, 0.5f, 1.5f);
    auto dx = to_device_bf16(x), dy = to_device_bf16(y), dw = to_device_bf16(w);
    gk::device_buffer<std::uint16_t> res(x.size()), out(x.size());
    GPUCAL_CUDA_CHECK(cudaMemset(res.data(), 0xFF, res.bytes()));
    GPUCAL_CUDA_CHECK(cudaMemset(out.data(), 0xFF, out.bytes()));
    gk::add_rms_norm_v2(dx.data(), dy.data(), dw.data(), res.data(), out.data(), tokens, hidden, 1e-5f, nullptr);
    std::vector<double> sum(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) sum[i] = gk::round_to_bf16(static_cast<float>(x[i] + y[i]));
    expect_bf16_close(from_device_bf16(res), sum);
    expect_bf16_close(from_device_bf16(out), gk::rms_norm_ref(sum, w, hidden, 1e-5));
  }
  for (const int inter : {1536, 14336, 1500}) {  // vector paths and a fallback
    SCOPED_TRACE(::testing::Message() << "inter=" << inter);
    const int tokens = 5;
    const auto gu = random_bf16(static_cast<std::size_t>(tokens) * 2 * inter, 14, -4, 4);
    auto dgu = to_device_bf16(gu);
    gk::device_buffer<std::uint16_t> act(static_cast<std::size_t>(tokens) * inter);
    GPUCAL_CUDA_CHECK(cudaMemset(act.data(), 0xFF, act.bytes()));
    gk::silu_mul_v2(dgu.data(), act.data(), tokens, inter, nullptr);
    expect_bf16_close(from_device_bf16(act), gk::silu_mul_ref(gu, inter));
  }
  check_rope(2);
}

TEST_F(layer_ops_test, argmax_is_exact_with_first_index_on_ties) {
  const int rows = 5, vocab = 128256;  // Llama 3's vocabulary
  auto logits = random_bf16(static_cast<std::size_t>(rows) * vocab, 9, -10, 10);
  logits[3 * vocab + 500] = 50;  // a tie in row 3: index 500 must win over 90000
  logits[3 * vocab + 90000] = 50;
  auto dl = to_device_bf16(logits);
  gk::device_buffer<std::int32_t> ids(rows);
  GPUCAL_CUDA_CHECK(cudaMemset(ids.data(), 0xFF, ids.bytes()));
  gk::argmax(dl.data(), ids.data(), rows, vocab, nullptr);
  EXPECT_EQ(from_device(ids), gk::argmax_ref(logits, vocab));
  EXPECT_EQ(from_device(ids)[3], 500);
}

TEST_F(layer_ops_test, split_qkv_with_and_without_bias) {
  const int tokens = 23, qw = 4 * 64, kvw = 2 * 64, width = qw + 2 * kvw;
  const auto qkv = random_bf16(static_cast<std::size_t>(tokens) * width, 21, -2, 2);
  const auto bias = random_bf16(width, 22, -0.5f, 0.5f);
  auto dqkv = to_device_bf16(qkv), dbias = to_device_bf16(bias);
  for (const bool with_bias : {false, true}) {
    gk::device_buffer<std::uint16_t> q(static_cast<std::size_t>(tokens) * qw), k(static_cast<std::size_t>(tokens) * kvw),
        v(k.size());
    for (auto* b : {&q, &k, &v}) GPUCAL_CUDA_CHECK(cudaMemset(b->data(), 0xFF, b->bytes()));
    gk::split_qkv(dqkv.data(), with_bias ? dbias.data() : nullptr, q.data(), k.data(), v.data(), tokens, qw, kvw, nullptr);
    const auto gq = from_device_bf16(q), gk_ = from_device_bf16(k), gv = from_device_bf16(v);
    for (int t = 0; t < tokens; ++t)
      for (int j = 0; j < width; ++j) {
        double want = qkv[static_cast<std::size_t>(t * width + j)];
        if (with_bias) want = gk::round_to_bf16(static_cast<float>(want + bias[static_cast<std::size_t>(j)]));
        const double got = j < qw          ? gq[static_cast<std::size_t>(t * qw + j)]
                           : j < qw + kvw ? gk_[static_cast<std::size_t>(t * kvw + j - qw)]
                                          : gv[static_cast<std::size_t>(t * kvw + j - qw - kvw)];
        ASSERT_EQ(got, want) << "token " << t << " column " << j << (with_bias ? " (bias)" : "");
      }
  }
}

TEST_F(layer_ops_test, quantize_fp8_per_tensor_matches_host) {
  const std::int64_t n = 300001;  // not a multiple of the grid
  const auto x = random_bf16(static_cast<std::size_t>(n), 23, -37, 29);
  auto dx = to_device_bf16(x);
  gk::device_buffer<std::uint8_t> out(static_cast<std::size_t>(n));
  gk::device_buffer<float> scale(1);
  GPUCAL_CUDA_CHECK(cudaMemset(out.data(), 0x7F, out.bytes()));
  gk::quantize_fp8_per_tensor(dx.data(), n, out.data(), scale.data(), nullptr);
  double absmax = 0;
  for (double v : x) absmax = std::max(absmax, std::abs(v));
  const float want_scale = static_cast<float>(absmax) / 448.0f;
  const float got_scale = from_device(scale)[0];
  ASSERT_EQ(got_scale, want_scale);
  const auto codes = from_device(out);
  for (std::int64_t i = 0; i < n; ++i)
    ASSERT_EQ(codes[static_cast<std::size_t>(i)],
              gk::float_to_fp8_e4m3_bits(static_cast<float>(x[static_cast<std::size_t>(i)]) / want_scale))
        << i;
  // All zeros: scale 1, codes 0.
  GPUCAL_CUDA_CHECK(cudaMemset(dx.data(), 0, dx.bytes()));
  gk::quantize_fp8_per_tensor(dx.data(), n, out.data(), scale.data(), nullptr);
  EXPECT_EQ(from_device(scale)[0], 1.0f);
}

}  // namespace
