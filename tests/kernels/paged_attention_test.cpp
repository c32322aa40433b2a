// GPU: KV append through a slot mapping, paged decode attention (v1, v2) and
// causal prefill attention (v1, v2; chunks after a cached prefix, checked against the
// decode reference run once per query token at its own position) against
// the host reference: random non-contiguous block tables, context lengths
// that are not multiples of the block size (1 and 0 included), GQA ratios
// 1/4/8, head_dim 64/128 (256 in v2), block sizes 16/32, bf16 and fp8 KV, contexts long
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
#include "gpucal/kernels/prefill_attention.hpp"
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

// A paged cache holding `lens` tokens per sequence: random, non-contiguous
// block tables (a shuffled permutation of a pool with spare blocks) and
// random contents rounded to the cache format (fp8 with a scale); k_true and
// v_true hold exactly the values the kernels read.
struct paged_cache {
  std::vector<std::vector<std::int32_t>> tables;
  std::vector<std::int32_t> flat;  ///< [sequences][max_blocks], -1 unused
  int max_blocks = 0;
  std::vector<double> k_true, v_true;
  gk::device_buffer<std::uint8_t> k_dev, v_dev;
  float k_scale = 1, v_scale = 1;

  paged_cache(const std::vector<std::int64_t>& lens, const attention_case& c)
      : k_dev(elements(lens, c) * (c.dtype == gk::kv_dtype::bf16 ? 2 : 1)), v_dev(k_dev.size()) {
    const int batch = static_cast<int>(lens.size());
    const std::int64_t num_blocks = blocks(lens, c) + 7;  // spare blocks the tables never use
    std::vector<std::int32_t> perm(static_cast<std::size_t>(num_blocks));
    std::iota(perm.begin(), perm.end(), 0);
    std::mt19937 rng(static_cast<unsigned>(c.q_heads * 131 + c.head_dim + c.block_size));
    std::shuffle(perm.begin(), perm.end(), rng);
    max_blocks = static_cast<int>(std::max<std::int64_t>(1, (*std::max_element(lens.begin(), lens.end()) + c.block_size - 1) / c.block_size));
    tables.resize(lens.size());
    flat.assign(static_cast<std::size_t>(batch * max_blocks), -1);
    std::size_t next = 0;
    for (int b = 0; b < batch; ++b)
      for (std::int64_t i = 0; i < (lens[b] + c.block_size - 1) / c.block_size; ++i) {
        tables[b].push_back(perm[next++]);
        flat[static_cast<std::size_t>(b * max_blocks + i)] = tables[b].back();
      }
    const std::size_t cache_elems = elements(lens, c);
    k_true = random_bf16(cache_elems, 3);
    v_true = random_bf16(cache_elems, 4);
    if (c.dtype == gk::kv_dtype::bf16) {
      auto kb = to_device_bf16(k_true), vb = to_device_bf16(v_true);
      GPUCAL_CUDA_CHECK(cudaMemcpy(k_dev.data(), kb.data(), kb.bytes(), cudaMemcpyDeviceToDevice));
      GPUCAL_CUDA_CHECK(cudaMemcpy(v_dev.data(), vb.data(), vb.bytes(), cudaMemcpyDeviceToDevice));
      return;
    }
    k_scale = 0.05f;
    v_scale = 0.04f;
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

  // The arguments both kernels share, for queries q, output out and table rows of max_blocks entries.
  gk::paged_attention_common view(const void* q, void* out, const std::int32_t* block_tables, const attention_case& c) const {
    gk::paged_attention_common a;
    a.q = q;
    a.k_cache = k_dev.data();
    a.v_cache = v_dev.data();
    a.cache_dtype = c.dtype;
    a.k_scale = k_scale;
    a.v_scale = v_scale;
    a.block_tables = block_tables;
    a.max_blocks_per_seq = max_blocks;
    a.out = out;
    a.q_heads = c.q_heads;
    a.kv_heads = c.kv_heads;
    a.head_dim = c.head_dim;
    a.block_size = c.block_size;
    a.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.head_dim)));
    return a;
  }

  static std::int64_t blocks(const std::vector<std::int64_t>& lens, const attention_case& c) {
    std::int64_t n = 0;
    for (auto l : lens) n += (l + c.block_size - 1) / c.block_size;
    return n;
  }
  static std::size_t elements(const std::vector<std::int64_t>& lens, const attention_case& c) {
    return static_cast<std::size_t>((blocks(lens, c) + 7) * c.block_size * c.kv_heads * c.head_dim);
  }
};

// Waits for the kernel and checks every output element against the reference rounded to bf16.
void expect_close_to_reference(const gk::device_buffer<std::uint16_t>& out, const std::vector<double>& ref) {
  GPUCAL_CUDA_CHECK(cudaDeviceSynchronize());
  const auto got = from_device_bf16(out);
  std::vector<double> ref_bf16(ref.size());
  for (std::size_t i = 0; i < ref.size(); ++i) ref_bf16[i] = gk::round_to_bf16(static_cast<float>(ref[i]));
  const auto report = gk::compare_close(got, ref_bf16, 1e-2 * gk::rms(ref_bf16), 1.6e-2);
  EXPECT_TRUE(report.ok()) << report.describe(got, ref_bf16);
}

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
                                 attention_case{28, 4, 128, 32, gk::kv_dtype::fp8_e4m3},   // group 7
                                 attention_case{16, 8, 256, 16, gk::kv_dtype::bf16},       // Gemma-2-9B's heads, v2 only
                                 attention_case{8, 4, 256, 16, gk::kv_dtype::fp8_e4m3}}) {  // Gemma-2-2B's, v2 only
    if (version == 1 && c.head_dim == 256) continue;  // version 1 refuses head_dim 256 (rejects_unsupported_shapes)
    SCOPED_TRACE(::testing::Message() << "v" << version << " q_heads=" << c.q_heads << " kv_heads=" << c.kv_heads << " head_dim="
                                      << c.head_dim << " block=" << c.block_size << " fp8=" << (c.dtype == gk::kv_dtype::fp8_e4m3));
    const int batch = static_cast<int>(lens.size());
    const paged_cache cache(lens, c);
    const auto q = random_bf16(static_cast<std::size_t>(batch * c.q_heads * c.head_dim), 5);
    const double scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
    const auto ref = gk::paged_attention_ref(q, cache.k_true, cache.v_true, cache.tables, lens, c.q_heads, c.kv_heads, c.head_dim,
                                             c.block_size, scale);

    auto dq = to_device_bf16(q);
    auto dtables = to_device(cache.flat);
    std::vector<std::int32_t> lens32(lens.begin(), lens.end());
    auto dlens = to_device(lens32);
    gk::device_buffer<std::uint16_t> out(q.size());
    GPUCAL_CUDA_CHECK(cudaMemset(out.data(), 0xFF, out.bytes()));
    gk::paged_attention_args a;
    static_cast<gk::paged_attention_common&>(a) = cache.view(dq.data(), out.data(), dtables.data(), c);
    a.context_lens = dlens.data();
    a.batch = batch;
    a.max_context_len = static_cast<int>(*std::max_element(lens.begin(), lens.end()));
    gk::device_buffer<std::uint8_t> ws(version == 1 ? gk::paged_attention_workspace_bytes(a) : gk::paged_attention_v2_workspace_bytes(a));
    a.workspace = ws.data();
    version == 1 ? gk::paged_attention(a, nullptr) : gk::paged_attention_v2(a, nullptr);
    expect_close_to_reference(out, ref);
  }
}

TEST_F(paged_attention_test, rejects_unsupported_shapes) {
  gk::paged_attention_args a;
  a.head_dim = 96;
  EXPECT_THROW(gk::paged_attention(a, nullptr), std::invalid_argument);
  EXPECT_THROW(gk::paged_attention_v2(a, nullptr), std::invalid_argument);
  a.head_dim = 256;  // version 2 only
  EXPECT_THROW(gk::paged_attention(a, nullptr), std::invalid_argument);
  a.head_dim = 128;
  a.q_heads = 18;
  a.kv_heads = 2;  // group 9
  EXPECT_THROW(gk::paged_attention_v2(a, nullptr), std::invalid_argument);
}


// Chunked prefill: sequences of (cached prefix, chunk) = (0, 1), (0, 70),
// (100, 37), (5, 130), (0, 0), (300, 64), (700, 100): chunks shorter and
// longer than a CTA's 64 rows, prefixes off the 64-key tile grid, an empty
// chunk; q rows of a sequence consecutive, tables read through table_rows.
void check_prefill(int version) {
  // The last sequence holds 5 tokens for a chunk of 70 (a "prefix" of -65): its
  // first 65 rows have no key and must come out as zeros, as the reference's
  // empty contexts do (the engine refuses such a step; the kernels define it).
  const std::vector<std::pair<std::int64_t, std::int64_t>> chunks{{0, 1},    {0, 70},   {100, 37}, {5, 130},
                                                                  {0, 0},    {300, 64}, {700, 100}, {-65, 70}};
  for (const attention_case c : {attention_case{8, 8, 128, 16, gk::kv_dtype::bf16}, attention_case{32, 8, 128, 16, gk::kv_dtype::bf16},
                                 attention_case{16, 2, 64, 32, gk::kv_dtype::bf16}, attention_case{12, 4, 128, 16, gk::kv_dtype::bf16},
                                 attention_case{24, 4, 64, 1, gk::kv_dtype::bf16}, attention_case{32, 8, 128, 16, gk::kv_dtype::fp8_e4m3},
                                 attention_case{8, 1, 64, 32, gk::kv_dtype::fp8_e4m3}}) {
    SCOPED_TRACE(::testing::Message() << "prefill v" << (version == 2 && c.dtype == gk::kv_dtype::fp8_e4m3 ? "2 (fp8: runs v1)" : std::to_string(version))
                                      << " q_heads=" << c.q_heads << " kv_heads=" << c.kv_heads << " head_dim=" << c.head_dim
                                      << " block=" << c.block_size << " fp8=" << (c.dtype == gk::kv_dtype::fp8_e4m3));
    std::vector<std::int64_t> lens;
    std::vector<std::int32_t> starts, qlens, ctx;
    std::int32_t tokens = 0, max_q = 0;
    for (const auto& [prefix, q] : chunks) {
      lens.push_back(prefix + q);
      starts.push_back(tokens);
      qlens.push_back(static_cast<std::int32_t>(q));
      ctx.push_back(static_cast<std::int32_t>(prefix + q));
      tokens += static_cast<std::int32_t>(q);
      max_q = std::max(max_q, static_cast<std::int32_t>(q));
    }
    const paged_cache cache(lens, c);
    const auto q = random_bf16(static_cast<std::size_t>(tokens) * c.q_heads * c.head_dim, 6);
    const double scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
    // The reference: every query token as a decode query over its own prefix.
    std::vector<std::vector<std::int32_t>> token_tables;
    std::vector<std::int64_t> token_ctx;
    for (std::size_t s = 0; s < chunks.size(); ++s)
      for (std::int64_t i = 0; i < chunks[s].second; ++i) {
        token_tables.push_back(cache.tables[s]);
        token_ctx.push_back(std::max<std::int64_t>(0, chunks[s].first + i + 1));
      }
    const auto ref = gk::paged_attention_ref(q, cache.k_true, cache.v_true, token_tables, token_ctx, c.q_heads, c.kv_heads, c.head_dim,
                                             c.block_size, scale);
    // Sequence s's table is stored at row 2 s of a table twice as tall (rows 2 s + 1 poisoned).
    std::vector<std::int32_t> tall(cache.flat.size() * 2, 1 << 30), rows;
    for (std::size_t s = 0; s < chunks.size(); ++s) {
      std::copy_n(cache.flat.begin() + static_cast<std::ptrdiff_t>(s * cache.max_blocks), cache.max_blocks,
                  tall.begin() + static_cast<std::ptrdiff_t>(2 * s * cache.max_blocks));
      rows.push_back(static_cast<std::int32_t>(2 * s));
    }
    auto dq = to_device_bf16(q);
    auto dtables = to_device(tall);
    auto drows = to_device(rows);
    auto dstarts = to_device(starts);
    auto dqlens = to_device(qlens);
    auto dctx = to_device(ctx);
    gk::device_buffer<std::uint16_t> out(q.size());
    GPUCAL_CUDA_CHECK(cudaMemset(out.data(), 0xFF, out.bytes()));
    gk::prefill_attention_args a;
    static_cast<gk::paged_attention_common&>(a) = cache.view(dq.data(), out.data(), dtables.data(), c);
    a.table_rows = drows.data();
    a.query_starts = dstarts.data();
    a.query_lens = dqlens.data();
    a.context_lens = dctx.data();
    a.sequences = static_cast<int>(chunks.size());
    a.max_query_len = max_q;
    version == 1 ? gk::prefill_attention(a, nullptr) : gk::prefill_attention_v2(a, nullptr);
    // P is rounded to bf16 before P V (as FlashAttention-2 does): the same bound as decode.
    expect_close_to_reference(out, ref);
  }
}

// Version 1 is what the reference engine runs; the device run tests it first, on its own.
TEST_F(paged_attention_test, prefill_matches_reference) { check_prefill(1); }

// Version 2 (cp.async, double-buffered; fp8 KV runs version 1).
TEST_F(paged_attention_test, prefill_v2_matches_reference) { check_prefill(2); }

TEST_F(paged_attention_test, prefill_rejects_unsupported_shapes) {
  gk::prefill_attention_args a;
  a.sequences = 1;
  a.max_query_len = 1;
  a.q_heads = 8;
  a.kv_heads = 8;
  a.scale = 1;
  a.head_dim = 96;
  EXPECT_THROW(gk::prefill_attention(a, nullptr), std::invalid_argument);
  EXPECT_THROW(gk::prefill_attention_v2(a, nullptr), std::invalid_argument);
  a.head_dim = 128;
  a.kv_heads = 3;  // 8 % 3
  EXPECT_THROW(gk::prefill_attention(a, nullptr), std::invalid_argument);
  a.kv_heads = 8;
  EXPECT_THROW(gk::prefill_attention(a, nullptr), std::invalid_argument);  // null pointers
  a.sequences = 70000;
  EXPECT_THROW(gk::prefill_attention(a, nullptr), std::invalid_argument);
}

TEST(prefill_attention_flops, counts_the_causal_pairs) {
  // A 4-token chunk after 3 cached tokens: 4 + 5 + 6 + 7 = 22 pairs, x 4 x 128 x 2 heads.
  EXPECT_DOUBLE_EQ(gk::prefill_attention_flops(4, 7, 2, 128), 22.0 * 4 * 128 * 2);
  EXPECT_DOUBLE_EQ(gk::prefill_attention_flops(0, 7, 2, 128), 0.0);
}

}  // namespace
