// The host block allocator: pool arithmetic equal to the memory model's, no
// block ever held by two sequences, all-or-nothing appends, slots through
// the block table.
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "gpucal/kernels/block_allocator.hpp"
#include "gpucal/model/catalog.hpp"
#include "gpucal/model/memory_model.hpp"

namespace gk = gpucal::kernels;
namespace gm = gpucal::model;

namespace {

// The allocator's block count for the pool the memory model computes equals
// the model's num_blocks, for GQA models, at tp > 1 and with fp8 KV.
TEST(block_allocator, block_count_equals_the_memory_model) {
  struct setup {
    const char* model;
    const char* gpu;
    int tp;
    const char* kv;
  };
  for (const setup s : {setup{"llama-3-8b", "h100-sxm", 1, "auto"}, setup{"llama-3-70b", "h100-sxm", 4, "fp8"},
                        setup{"qwen2.5-7b", "l40s", 1, "auto"}, setup{"qwen3-30b-a3b", "h200", 8, "auto"}}) {
    SCOPED_TRACE(s.model);
    gm::estimate_options o;
    o.tp = s.tp;
    o.kv_cache_dtype = s.kv;
    const auto m = gm::resolve_model(s.model);
    const auto e = gm::estimate_memory(m, gm::resolve_gpu(s.gpu), gm::resolve_engine("vllm"), gm::default_coefficients(), o);
    const auto& a = m.layers.front().attention;
    const gk::kv_cache_shape shape{m.num_layers(), gm::kv_heads_per_rank(a.num_kv_heads, s.tp), a.head_dim,
                                   e.settings.block_size, static_cast<int>(gm::dtype_bytes(e.settings.kv_dtype))};
    EXPECT_EQ(shape.bytes_per_token(), e.kv.bytes_per_token);
    EXPECT_EQ(shape.blocks_for_budget(e.kv_pool_bytes), e.num_blocks);
  }
}

TEST(block_allocator, appends_allocate_on_block_boundaries) {
  gk::block_allocator a(10, 16);
  a.add_sequence(1);
  ASSERT_TRUE(a.append(1, 1));
  EXPECT_EQ(a.block_table(1).size(), 1u);
  ASSERT_TRUE(a.append(1, 15));  // 16 tokens: still one block
  EXPECT_EQ(a.block_table(1).size(), 1u);
  ASSERT_TRUE(a.append(1, 1));   // the 17th opens a second
  EXPECT_EQ(a.block_table(1).size(), 2u);
  EXPECT_EQ(a.free_blocks(), 8);
  EXPECT_EQ(a.slot(1, 16), a.block_table(1)[1] * 16LL);
  EXPECT_EQ(a.slot(1, 5), a.block_table(1)[0] * 16LL + 5);
  EXPECT_THROW(a.slot(1, 17), std::out_of_range);
  // All or nothing: 200 tokens need 13 blocks, 8 are free.
  EXPECT_FALSE(a.append(1, 200));
  EXPECT_EQ(a.length(1), 17);
  EXPECT_EQ(a.free_blocks(), 8);
  a.free_sequence(1);
  EXPECT_EQ(a.free_blocks(), 10);
  EXPECT_THROW(a.block_table(1), std::invalid_argument);
  a.add_sequence(2);
  EXPECT_THROW(a.add_sequence(2), std::invalid_argument);
}

TEST(block_allocator, never_hands_out_a_block_twice) {
  std::mt19937 rng(2024);
  gk::block_allocator a(500, 16);
  std::set<std::int64_t> live;
  std::int64_t next_id = 0;
  for (int step = 0; step < 20000; ++step) {
    const int action = static_cast<int>(rng() % 10);
    if (action < 2 || live.empty()) {
      a.add_sequence(next_id);
      live.insert(next_id++);
    } else if (action < 9) {
      auto it = live.begin();
      std::advance(it, static_cast<long>(rng() % live.size()));
      a.append(*it, static_cast<std::int64_t>(rng() % 40));
    } else {
      auto it = live.begin();
      std::advance(it, static_cast<long>(rng() % live.size()));
      a.free_sequence(*it);
      live.erase(it);
    }
    if (step % 500 == 0) {
      std::set<std::int32_t> held;
      std::int64_t count = 0;
      for (std::int64_t id : live) {
        const auto& t = a.block_table(id);
        EXPECT_EQ(static_cast<std::int64_t>(t.size()), (a.length(id) + 15) / 16);
        for (std::int32_t b : t) {
          EXPECT_TRUE(b >= 0 && b < 500);
          held.insert(b);
          ++count;
        }
      }
      ASSERT_EQ(static_cast<std::int64_t>(held.size()), count) << "a block is held twice at step " << step;
      ASSERT_EQ(count + a.free_blocks(), 500);
    }
  }
}

}  // namespace
