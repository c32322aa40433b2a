// GPU: KV append through a slot mapping, and paged decode attention against
// the host reference: random non-contiguous block tables, context lengths
// that are not multiples of the block size (1 and 0 included), GQA ratios
// 1/4/8, head_dim 64/128, block sizes 16/32, bf16 and fp8 KV, contexts long
// enough to use several partitions. Outputs poisoned, every element checked.
// Tolerance: bf16 output, |got - ref| <= 1.6e-2 |ref| + 1e-2 rms(ref); for fp8
// KV the reference reads the same fp8-rounded cache, so the bound is the same.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "device_vectors.hpp"
#include "gpu_fixture.hpp"
#include "gpucal/kernels/compare.hpp"
#include "gpucal/kernels/kv_cache.hpp"
#include "gpucal/kernels/paged_attention.hpp"
#include "gpucal/kernels/reference_ops.hpp"

namespace gk = gpucal::kernels;
using gpucal::test::from_device;
using gpucal::test::from_device_bf16;
using gpucal::test::random_bf16;
using gpucal::test::to_device;
using gpucal::test::to_device_bf16;

namespace {

class paged_attention_test : public gpucal::test::gpu_test {};

TEST_F(paged_attention_test, kv_append_writes_the_mapped_slots_only) {
  const int kv_heads = 4, head_dim = 64, block_size = 16, batch = 5;
  const gk::kv_cache_shape shape{1, kv_heads, head_dim, block_size, 2};
  gk::kv_pool pool(shape, 8, gk::kv_dtype::bf16);
  const auto half_bytes = static_cast<std::size_t>(pool.half_elements()) * 2;
  GPUCAL_CUDA_CHECK(cudaMemset(pool.k(0), 0xFF, 2 * half_bytes));
  const auto k = random_bf16(static_cast<std::size_t>(batch * kv_heads * head_dim), 1);
  const auto v = random_bf16(k.size(), 2);
  const std::vector<std::int64_t> slots{37, 0, -1, 127, 18};  // -1: padding, skipped
  auto dk = to_device_bf16(k), dv = to_device_bf16(v);
  auto ds = to_device(slots);
  gk::kv_append(dk.data(), dv.data(), ds.data(), pool.k(0), pool.v(0), gk::kv_dtype::bf16, 1, 1, batch, kv_heads,
                head_dim, nullptr);
  std::vector<std::uint16_t> cache(static_cast<std::size_t>(2 * pool.half_elements()));
  GPUCAL_CUDA_CHECK(cudaMemcpy(cache.data(), pool.k(0), 2 * half_bytes, cudaMemcpyDeviceToHost));
  const std::size_t row = kv_heads * head_dim, half = static_cast<std::size_t>(pool.half_elements());
  std::vector<bool> written(half / row, false);
  for (int b = 0; b < batch; ++b) {
    if (slots[b] < 0) continue;
    written[static_cast<std::size_t>(slots[b])] = true;
    for (std::size_t i = 0; i < row; ++i) {
      ASSERT_EQ(gk::bf16_bits_to_float(cache[static_cast<std::size_t>(slots[b]) * row + i]), k[b * row + i]);
      ASSERT_EQ(gk::bf16_bits_to_float(cache[half + static_cast<std::size_t>(slots[b]) * row + i]), v[b * row + i]);
    }
  }
  for (std::size_t s = 0; s < written.size(); ++s)
    if (!written[s]) {
      for (std::size_t i = 0; i < row; ++i) ASSERT_EQ(cache[s * row + i], 0xFFFF) << "slot " << s << " was written";
    }
}

struct attention_case {
  int q_heads, kv_heads, head_dim, block_size;
  gk::kv_dtype dtype;
};

// Both versions of the kernel (v1, and v2 with its own split) on the same data.
TEST_F(paged_attention_test, matches_reference) {
  // 1500 spans 3 partitions of 512 in v1; 9000 spans several of v2's at batch 7.
  const std::vector<std::int64_t> lens{1, 17, 0, 100, 1500, 33, 9000};
  for (const int version : {1, 2})
  for (const attention_case c : {attention_case{8, 8, 128, 16, gk::kv_dtype::bf16}, attention_case{32, 8, 128, 16, gk::kv_dtype::bf16},
                                 attention_case{16, 2, 64, 32, gk::kv_dtype::bf16}, attention_case{8, 1, 128, 16, gk::kv_dtype::bf16},
                                 attention_case{12, 4, 128, 16, gk::kv_dtype::bf16},  // group 3: v2's bucket of 4, one head unused
                                 attention_case{24, 4, 64, 1, gk::kv_dtype::bf16},    // group 6, one-token blocks
                                 attention_case{32, 8, 128, 16, gk::kv_dtype::fp8_e4m3}, attention_case{8, 2, 64, 32, gk::kv_dtype::fp8_e4m3},
                                 attention_case{28, 4, 128, 32, gk::kv_dtype::fp8_e4m3}}) {  // group 7
    SCOPED_TRACE(::testing::Message() << "v" << version << " q_heads=" << c.q_heads << " kv_heads=" << c.kv_heads << " head_dim="
                                      << c.head_dim << " block=" << c.block_size << " fp8=" << (c.dtype == gk::kv_dtype::fp8_e4m3));
    const int batch = static_cast<int>(lens.size());
    std::int64_t blocks_needed = 0;
    for (auto l : lens) blocks_needed += (l + c.block_size - 1) / c.block_size;
    const std::int64_t num_blocks = blocks_needed + 7;  // spare blocks the tables never use
    // Random, non-contiguous block tables: a shuffled permutation of the pool.
    std::vector<std::int32_t> perm(static_cast<std::size_t>(num_blocks));
    std::iota(perm.begin(), perm.end(), 0);
    std::mt19937 rng(static_cast<unsigned>(c.q_heads * 131 + c.head_dim + c.block_size));
    std::shuffle(perm.begin(), perm.end(), rng);
    const int max_blocks = static_cast<int>((*std::max_element(lens.begin(), lens.end()) + c.block_size - 1) / c.block_size);
    std::vector<std::vector<std::int32_t>> tables(lens.size());
    std::vector<std::int32_t> flat(static_cast<std::size_t>(batch * max_blocks), -1);
    std::size_t next = 0;
    for (int b = 0; b < batch; ++b)
      for (std::int64_t i = 0; i < (lens[b] + c.block_size - 1) / c.block_size; ++i) {
        tables[b].push_back(perm[next++]);
        flat[static_cast<std::size_t>(b * max_blocks + i)] = tables[b].back();
      }

    // Cache contents: random, rounded to the cache format (fp8 with a scale).
    const std::size_t cache_elems = static_cast<std::size_t>(num_blocks * c.block_size * c.kv_heads * c.head_dim);
    const float k_scale = 0.05f, v_scale = 0.04f;
    std::vector<double> k_true = random_bf16(cache_elems, 3), v_true = random_bf16(cache_elems, 4);
    gk::device_buffer<std::uint8_t> k_dev(cache_elems * (c.dtype == gk::kv_dtype::bf16 ? 2 : 1)),
        v_dev(k_dev.size());
    if (c.dtype == gk::kv_dtype::bf16) {
      auto kb = to_device_bf16(k_true), vb = to_device_bf16(v_true);
      GPUCAL_CUDA_CHECK(cudaMemcpy(k_dev.data(), kb.data(), kb.bytes(), cudaMemcpyDeviceToDevice));
      GPUCAL_CUDA_CHECK(cudaMemcpy(v_dev.data(), vb.data(), vb.bytes(), cudaMemcpyDeviceToDevice));
    } else {
      std::vector<std::uint8_t> kq(cache_elems), vq(cache_elems);
      for (std::size_t i = 0; i < cache_elems; ++i) {
        kq[i] = gk::float_to_fp8_e4m3_bits(static_cast<float>(k_true[i]) / k_scale);
        vq[i] = gk::float_to_fp8_e4m3_bits(static_cast<float>(v_true[i]) / v_scale);
        k_true[i] = gk::fp8_e4m3_bits_to_float(kq[i]) * static_cast<double>(k_scale);
        v_true[i] = gk::fp8_e4m3_bits_to_float(vq[i]) * static_cast<double>(v_scale);
      }
      GPUCAL_CUDA_CHECK(cudaMemcpy(k_dev.data(), kq.data(), cache_elems, cudaMemcpyHostToDevice));
      GPUCAL_CUDA_CHECK(cudaMemcpy(v_dev.data(), vq.data(), cache_elems, cudaMemcpyHostToDevice));
    }
    const auto q = random_bf16(static_cast<std::size_t>(batch * c.q_heads * c.head_dim), 5);
    const double scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
    const auto ref = gk::paged_attention_ref(q, k_true, v_true, tables, lens, c.q_heads, c.kv_heads, c.head_dim,
                                             c.block_size, scale);

    auto dq = to_device_bf16(q);
    auto dtables = to_device(flat);
    std::vector<std::int32_t> lens32(lens.begin(), lens.end());
    auto dlens = to_device(lens32);
    gk::device_buffer<std::uint16_t> out(q.size());
    GPUCAL_CUDA_CHECK(cudaMemset(out.data(), 0xFF, out.bytes()));
    gk::paged_attention_args a;
    a.q = dq.data();
    a.k_cache = k_dev.data();
    a.v_cache = v_dev.data();
    a.cache_dtype = c.dtype;
    a.k_scale = c.dtype == gk::kv_dtype::bf16 ? 1 : k_scale;
    a.v_scale = c.dtype == gk::kv_dtype::bf16 ? 1 : v_scale;
    a.block_tables = dtables.data();
    a.max_blocks_per_seq = max_blocks;
    a.context_lens = dlens.data();
    a.out = out.data();
    a.batch = batch;
    a.q_heads = c.q_heads;
    a.kv_heads = c.kv_heads;
    a.head_dim = c.head_dim;
    a.block_size = c.block_size;
    a.max_context_len = static_cast<int>(*std::max_element(lens.begin(), lens.end()));
    a.scale = static_cast<float>(scale);
    gk::device_buffer<std::uint8_t> ws(version == 1 ? gk::paged_attention_workspace_bytes(a) : gk::paged_attention_v2_workspace_bytes(a));
    a.workspace = ws.data();
    version == 1 ? gk::paged_attention(a, nullptr) : gk::paged_attention_v2(a, nullptr);
    GPUCAL_CUDA_CHECK(cudaDeviceSynchronize());
    const auto got = from_device_bf16(out);
    std::vector<double> ref_bf16(ref.size());
    for (std::size_t i = 0; i < ref.size(); ++i) ref_bf16[i] = gk::round_to_bf16(static_cast<float>(ref[i]));
    const auto report = gk::compare_close(got, ref_bf16, 1e-2 * gk::rms(ref_bf16), 1.6e-2);
    EXPECT_TRUE(report.ok()) << report.describe(got, ref_bf16);
  }
}

TEST_F(paged_attention_test, rejects_unsupported_shapes) {
  gk::paged_attention_args a;
  a.head_dim = 96;
  EXPECT_THROW(gk::paged_attention(a, nullptr), std::invalid_argument);
  EXPECT_THROW(gk::paged_attention_v2(a, nullptr), std::invalid_argument);
  a.head_dim = 128;
  a.q_heads = 18;
  a.kv_heads = 2;  // group 9
  EXPECT_THROW(gk::paged_attention_v2(a, nullptr), std::invalid_argument);
}

}  // namespace
