// KV cache bytes per token: the seed's table (its section 3.2), MLA, fp8,
// tensor parallelism and sliding windows. Expectations are the formula
// 2 x layers x kv_heads x head_dim x bytes written out per case.
#include <gtest/gtest.h>

#include "gpucal/model/catalog.hpp"
#include "gpucal/model/memory_model.hpp"

namespace gm = gpucal::model;

namespace {

std::int64_t kv_per_token(const char* name, int tp = 1, gm::dtype kv = gm::dtype::bfloat16) {
  return gm::kv_cache_layout(gm::resolve_model(name), tp, kv).bytes_per_token();
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

TEST(kv_cache, sliding_window_layers_cap_at_the_window) {
  // Gemma-2-9B: 42 layers, 8 KV heads of 256; even layers use a 4096-token window.
  const auto k = gm::kv_cache_layout(gm::resolve_model("gemma-2-9b"), 1, gm::dtype::bfloat16);
  const std::int64_t per_layer = 2 * 8 * 256 * 2;
  EXPECT_EQ(k.full_bytes_per_token, 21 * per_layer);
  EXPECT_EQ(k.sliding_bytes_per_token, 21 * per_layer);
  ASSERT_TRUE(k.window.has_value());
  EXPECT_EQ(*k.window, 4096);
  EXPECT_EQ(k.request_bytes(1000), 42 * per_layer * 1000);
  EXPECT_EQ(k.request_bytes(8192), 21 * per_layer * 8192 + 21 * per_layer * 4096);
  // Mistral-7B-v0.1: every layer slides over 4096 tokens.
  const auto mistral = gm::kv_cache_layout(gm::resolve_model("mistral-7b"), 1, gm::dtype::bfloat16);
  EXPECT_EQ(mistral.full_bytes_per_token, 0);
  EXPECT_EQ(mistral.request_bytes(32768), 2 * 32 * 8 * 128 * 2 * 4096LL);
}

TEST(kv_cache, moe_does_not_change_kv) {
  // Mixtral-8x7B has Mistral-7B's attention: 32 layers, 8 KV heads of 128.
  EXPECT_EQ(kv_per_token("mixtral-8x7b"), 2 * 32 * 8 * 128 * 2);
}

}  // namespace
