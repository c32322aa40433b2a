// KV cache bytes per token: the seed's table (its section 3.2), MLA, fp8,
// tensor parallelism and sliding windows, and vLLM's grouping of layer
// caches. Expectations are the formula 2 x layers x kv_heads x head_dim x
// bytes, and vLLM 0.33's block rules (kv_cache_interface.py,
// kv_cache_planning.py), written out per case.
#include <gtest/gtest.h>

#include "gpucal/model/catalog.hpp"
#include "gpucal/model/memory_model.hpp"

namespace gm = gpucal::model;

namespace {

std::vector<gm::layer_cache> caches(const char* name, int tp = 1, gm::dtype kv = gm::dtype::bfloat16) {
  gm::kv_cache_options o;
  o.tp = tp;
  o.kv_dtype = kv;
  return gm::layer_caches(gm::resolve_model(name), o);
}

std::int64_t kv_per_token(const char* name, int tp = 1, gm::dtype kv = gm::dtype::bfloat16) {
  std::int64_t n = 0;
  for (const auto& c : caches(name, tp, kv)) n += c.bytes_per_token;
  return n;
}

TEST(kv_cache, seed_table_bf16) {
  EXPECT_EQ(kv_per_token("llama-3-8b"), 2 * 32 * 8 * 128 * 2);   // 131072 ("131 KB")
  EXPECT_EQ(kv_per_token("llama-3-70b"), 2 * 80 * 8 * 128 * 2);  // 327680 ("327 KB")
  EXPECT_EQ(kv_per_token("qwen2.5-7b"), 2 * 28 * 4 * 128 * 2);   // 57344 ("57 KB")
  EXPECT_EQ(kv_per_token("llama-2-7b"), 2 * 32 * 32 * 128 * 2);  // 524288 ("524 KB")
  EXPECT_EQ(kv_per_token("llama-3-8b"), 131072);
  EXPECT_EQ(kv_per_token("llama-3-70b"), 327680);
  EXPECT_EQ(kv_per_token("qwen2.5-7b"), 57344);
  EXPECT_EQ(kv_per_token("llama-2-7b"), 524288);
}

TEST(kv_cache, deepseek_v3_mla_latent) {
  // 61 layers x (kv_lora_rank 512 + qk_rope_head_dim 64) x 2 bytes.
  EXPECT_EQ(kv_per_token("deepseek-v3"), 61 * (512 + 64) * 2);
  EXPECT_EQ(kv_per_token("deepseek-v3"), 70272);
  // The latent is replicated on every tensor-parallel rank.
  EXPECT_EQ(kv_per_token("deepseek-v3", 8), 70272);
  EXPECT_EQ(kv_per_token("deepseek-v3", 1, gm::dtype::fp8_e4m3), 61 * 576);
}

TEST(kv_cache, fp8_halves_bf16) {
  EXPECT_EQ(kv_per_token("llama-3-8b", 1, gm::dtype::fp8_e4m3), 2 * 32 * 8 * 128);
  EXPECT_EQ(kv_per_token("llama-3-8b", 1, gm::dtype::fp8_e5m2), 65536);
}

TEST(kv_cache, tensor_parallel_splits_then_replicates_kv_heads) {
  EXPECT_EQ(kv_per_token("llama-3-70b", 2), 2 * 80 * 4 * 128 * 2);
  EXPECT_EQ(kv_per_token("llama-3-70b", 4), 2 * 80 * 2 * 128 * 2);
  EXPECT_EQ(kv_per_token("llama-3-70b", 8), 2 * 80 * 1 * 128 * 2);
  // Qwen3-30B-A3B has 4 KV heads: at tp=8 each GPU keeps one (replicated), not half of one.
  EXPECT_EQ(kv_per_token("qwen3-30b-a3b", 8), 2 * 48 * 1 * 128 * 2);
  EXPECT_EQ(kv_per_token("qwen3-30b-a3b", 4), 2 * 48 * 1 * 128 * 2);
  EXPECT_EQ(kv_per_token("qwen3-30b-a3b", 2), 2 * 48 * 2 * 128 * 2);
}

TEST(kv_cache, sliding_window_layers_form_their_own_group) {
  // Gemma-2-9B: 42 layers, 8 KV heads of 256; even layers use a 4096-token window.
  const auto c = caches("gemma-2-9b");
  const std::int64_t per_layer = 2 * 8 * 256 * 2;  // 8192 B per token and layer
  ASSERT_EQ(c.size(), 42u);
  EXPECT_EQ(c[0].kind, gm::cache_kind::sliding);
  EXPECT_EQ(c[0].window_tokens, 4096);
  EXPECT_EQ(c[1].kind, gm::cache_kind::full);
  gm::kv_cache_rules rules;  // block 16, one batch of 8192 tokens in flight
  const auto p = gm::plan_kv_cache(c, rules, 8192, 8192);
  // Equal pages, two buckets of 21 layers: two groups, a block id covers 21 layers.
  ASSERT_EQ(p.groups.size(), 2u);
  EXPECT_EQ(p.bytes_per_block, 21 * 16 * per_layer);
  // Full group: 8192 / 16 = 512 blocks. Sliding group: cdiv(min(4095 + 8192, 8192), 16) + 1 = 513.
  EXPECT_EQ(p.blocks_per_request, 512 + 513);
  // A 1000-token request holds 63 blocks in each group (the sliding one never more than the full one).
  EXPECT_EQ(p.blocks_for(1000), 63 + 63);
  // Mistral-7B-v0.1: every layer slides over 4096 tokens, one uniform group.
  const auto mistral = gm::plan_kv_cache(caches("mistral-7b"), rules, 32768, 8192);
  ASSERT_EQ(mistral.groups.size(), 1u);
  EXPECT_EQ(mistral.bytes_per_block, 32 * 16 * 2 * 8 * 128 * 2);
  EXPECT_EQ(mistral.blocks_per_request, (4095 + 8192 + 15) / 16 + 1);  // 769
}

TEST(kv_cache, moe_does_not_change_kv) {
  // Mixtral-8x7B has Mistral-7B's attention: 32 layers, 8 KV heads of 128.
  EXPECT_EQ(kv_per_token("mixtral-8x7b"), 2 * 32 * 8 * 128 * 2);
}

}  // namespace
