// The seed write-up's worked examples (shared/seed, sections 3.3, 4.2 and
// 6.1), reproduced with the seed's own assumptions: a decimal "80 GB" GPU,
// 0.9 utilization, no activation term, and in 4.2 a flat 2 GB reserve. The
// model is driven through the same estimate_memory call the CLI uses, with
// an engine profile and coefficients that encode exactly those assumptions.
#include <gtest/gtest.h>

#include "gpucal/model/catalog.hpp"
#include "gpucal/model/memory_model.hpp"

namespace gm = gpucal::model;

namespace {

// The seed's A100: 80 x 10^9 bytes, nothing published about cudaMemGetInfo.
gm::gpu_spec seed_a100() {
  gm::gpu_spec g = gm::resolve_gpu("a100-80gb");
  g.memory_bytes = 80'000'000'000;
  g.cuda_total_memory_bytes = 80'000'000'000;
  return g;
}

// vLLM's budget rule (total x utilization minus what is charged), charging
// only the weights and a flat reserve, as the seed does.
gm::engine_profile seed_engine() {
  gm::engine_profile e = gm::resolve_engine("vllm");
  e.budget_charges = {gm::memory_item::weights, gm::memory_item::non_torch};
  e.outside_budget = {};
  e.kv_pool_factor = 1.0;
  return e;
}

gm::coefficients seed_coefficients(double reserve_bytes) {
  gm::coefficients c = gm::default_coefficients();
  c.memory.non_torch_bytes.value = reserve_bytes;
  c.memory.cuda_context_bytes.value = 0;
  c.memory.cuda_graph_bytes.value = 0;
  return c;
}

gm::memory_estimate seed_estimate(double reserve_bytes) {
  gm::estimate_options opt;
  opt.gpu_memory_utilization = 0.9;
  opt.block_size = 1;  // the seed counts tokens, not blocks
  opt.max_model_len = 2048;
  return gm::estimate_memory(gm::resolve_model("llama-3-8b"), seed_a100(), seed_engine(), seed_coefficients(reserve_bytes), opt);
}

// 3.3: Llama-3-8B, 131 KB per token x 100 requests x 2048 tokens = 26.8 GB.
TEST(seed_examples, section_3_3_kv_total) {
  const auto kv = gm::plan_kv_cache(gm::layer_caches(gm::resolve_model("llama-3-8b"), {}), {.block_size = 1}, 2048, 2048);
  const std::int64_t total = kv.bytes_for(2048) * 100;
  EXPECT_EQ(total, 131072LL * 2048 * 100);
  EXPECT_EQ(total, 26'843'545'600);  // the seed's "26.8 GB" (10^9 bytes)
}

// 4.2: A100 80 GB, utilization 0.9, 16 GB of weights, 2 GB reserve -> 54 GB pool.
// gpucal counts the weights exactly (16.06 GB), so the pool is 53.94 GB.
TEST(seed_examples, section_4_2_pool) {
  const auto e = seed_estimate(2e9);
  EXPECT_EQ(e.weights_bytes, 16'060'522'496);
  EXPECT_EQ(e.budget_bytes, 72'000'000'000);
  EXPECT_EQ(e.kv_pool_bytes, 72'000'000'000 - 16'060'522'496 - 2'000'000'000);
  EXPECT_NEAR(static_cast<double>(e.kv_pool_bytes) / 1e9, 54.0, 0.1);
}

// 6.1: same GPU without the reserve: 80 x 0.9 - 16 = 56 GB; "437,000 tokens" and
// "213 requests" at 2048 tokens. The seed divides 56 x 10^9 by 128,000 bytes, mixing
// its "131 KB" (131,072 bytes) with a decimal 128 KB; with 131,072 bytes per token and
// the exact weights, the pool holds 426,784 tokens and 208 requests of 2048 tokens.
TEST(seed_examples, section_6_1_capacity) {
  const auto e = seed_estimate(0);
  EXPECT_EQ(e.kv_pool_bytes, 72'000'000'000 - 16'060'522'496);
  EXPECT_EQ(e.max_tokens, (72'000'000'000 - 16'060'522'496) / 131072);
  EXPECT_EQ(e.max_tokens, 426'784);
  EXPECT_EQ(static_cast<std::int64_t>(e.max_concurrency), 208);
  // The seed's own arithmetic, for the record: 56e9 / 128e3 = 437,500 and / 2048 = 213.
  EXPECT_EQ(static_cast<std::int64_t>(56e9 / 128e3), 437'500);
  EXPECT_NEAR(static_cast<double>(e.max_tokens) / 437'000, 0.977, 0.001);  // 2.3 % below the seed
}

}  // namespace
