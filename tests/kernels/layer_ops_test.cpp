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

TEST_F(layer_ops_test, rope_with_llama3_scaling) {
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
  gk::rope(dq.data(), dk.data(), dpos.data(), dinv.data(), tokens, q_heads, kv_heads, head_dim, nullptr);
  gk::rope_ref(q, pos, q_heads, head_dim, inv_rounded);
  gk::rope_ref(k, pos, kv_heads, head_dim, inv_rounded);
  expect_bf16_close(from_device_bf16(dq), q);
  expect_bf16_close(from_device_bf16(dk), k);
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

}  // namespace
