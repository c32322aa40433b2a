// Parameter counts tensor by tensor, and tensor-parallel shards. Expected
// totals are published figures (named per test) or arithmetic written out
// here from the config values, independent of the inventory code.
#include <gtest/gtest.h>

#include "gpucal/model/catalog.hpp"
#include "gpucal/model/errors.hpp"
#include "gpucal/model/tensor_inventory.hpp"

namespace gm = gpucal::model;

namespace {

std::int64_t total_params(const char* name, int tp = 1) {
  return gm::build_inventory(gm::resolve_model(name), tp).total_params();
}

const gm::tensor_group& group(const gm::tensor_inventory& inv, const std::string& name) {
  for (const auto& g : inv.groups)
    if (g.name == name) return g;
  throw std::runtime_error("no tensor group " + name);
}

// Figures the issue requires to be exact (Hugging Face model cards /
// safetensors metadata of the four checkpoints).
TEST(tensor_inventory, exact_counts_of_reference_models) {
  EXPECT_EQ(total_params("llama-3-8b"), 8'030'261'248);
  EXPECT_EQ(total_params("llama-3-70b"), 70'553'706'496);
  EXPECT_EQ(total_params("qwen2.5-7b"), 7'615'616'512);
  EXPECT_EQ(total_params("llama-2-7b"), 6'738'415'616);
}

TEST(tensor_inventory, llama_3_8b_by_hand) {
  // vocab 128256, hidden 4096, 32 layers, 32 heads / 8 KV heads of 128, MLP 14336, untied.
  const std::int64_t embed = 128256LL * 4096;
  const std::int64_t attn = 4096LL * 4096 * 2 + 4096LL * 1024 * 2;
  const std::int64_t mlp = 3LL * 4096 * 14336;
  const std::int64_t norms = 2 * 4096;
  EXPECT_EQ(total_params("llama-3-8b"), 2 * embed + 32 * (attn + mlp + norms) + 4096);
}

TEST(tensor_inventory, qwen_biases_are_counted) {
  const auto inv = gm::build_inventory(gm::resolve_model("qwen2.5-7b"), 1);
  EXPECT_EQ(group(inv, "layers.*.self_attn.q_proj.bias").params(), 28 * 3584);
  EXPECT_EQ(group(inv, "layers.*.self_attn.k_proj.bias").params(), 28 * 512);
}

TEST(tensor_inventory, mixtral_total_and_active) {
  // 32000 x 4096 embeddings (untied), 32 layers of GQA attention (32/8 heads of 128),
  // 8 experts of 3 x 4096 x 14336, a 8 x 4096 router and 2 norms; 2 experts per token.
  const std::int64_t attn = 4096LL * 4096 * 2 + 4096LL * 1024 * 2;
  const std::int64_t expert = 3LL * 4096 * 14336;
  const std::int64_t fixed = 2 * 32000LL * 4096 + 4096;
  const std::int64_t per_layer = attn + 8 * 4096 + 2 * 4096;
  const auto inv = gm::build_inventory(gm::resolve_model("mixtral-8x7b"), 1);
  EXPECT_EQ(inv.total_params(), fixed + 32 * (per_layer + 8 * expert));  // 46,702,792,704 ("46.7B")
  EXPECT_EQ(inv.total_params(), 46'702'792'704);
  EXPECT_EQ(inv.active_params(), fixed + 32 * (per_layer + 2 * expert));  // 12,879,925,248 ("12.9B active")
}

TEST(tensor_inventory, deepseek_v3_mla_and_moe) {
  // DeepSeek-V3: hidden 7168, 61 layers (first 3 dense, MLP 18432), MLA with
  // q_lora 1536, kv_lora 512, 128 heads of nope 128 + rope 64, v 128; 256 routed
  // experts of 2048 + 1 shared, top-8, router bias; vocab 129280, untied.
  const std::int64_t h = 7168, heads = 128;
  const std::int64_t attn = h * 1536 + 1536 + 1536 * heads * 192 + h * 576 + 512 + 512 * heads * 256 + heads * 128 * h;
  const std::int64_t moe_fixed = 3 * h * 2048 + 256 * h + 256;  // shared expert + router + bias
  const std::int64_t expert = 3 * h * 2048;
  const std::int64_t base = 2 * 129280 * h + h + 61 * (attn + 2 * h) + 3 * (3 * h * 18432) + 58 * moe_fixed;
  const auto inv = gm::build_inventory(gm::resolve_model("deepseek-v3"), 1);
  EXPECT_EQ(inv.total_params(), base + 58 * 256 * expert);
  EXPECT_EQ(inv.total_params(), 671'026'419'200);  // DeepSeek's "671B total" (MTP layer excluded)
  EXPECT_EQ(inv.active_params(), base + 58 * 8 * expert);  // "37B activated"
}

TEST(tensor_inventory, tied_embeddings_counted_once) {
  const auto m = gm::resolve_model("gemma-2-9b");
  ASSERT_TRUE(m.tie_word_embeddings);
  const auto inv = gm::build_inventory(m, 1);
  for (const auto& g : inv.groups) EXPECT_NE(g.role, gm::tensor_role::lm_head) << g.name;
  // 256000 x 3584 tied embeddings; 42 layers of 16/8 heads of 256, MLP 14336, 4 norms:
  // 9,241,705,984, the "9.24B" of google/gemma-2-9b's model card.
  EXPECT_EQ(inv.total_params(), 9'241'705'984);
}

TEST(tensor_inventory, tp_shards_columns_rows_and_vocab) {
  const auto m = gm::resolve_model("llama-3-70b");
  const auto inv = gm::build_inventory(m, 8);
  const auto& q = group(inv, "layers.*.self_attn.q_proj.weight");
  EXPECT_EQ(q.rank_rows, 8192 / 8);
  EXPECT_EQ(q.rank_cols, 8192);
  const auto& o = group(inv, "layers.*.self_attn.o_proj.weight");
  EXPECT_EQ(o.rank_rows, 8192);
  EXPECT_EQ(o.rank_cols, 8192 / 8);
  const auto& k = group(inv, "layers.*.self_attn.k_proj.weight");
  EXPECT_EQ(k.rank_rows, 128);  // 8 KV heads over 8 GPUs: one each
  const auto& down = group(inv, "layers.*.mlp.down_proj.weight");
  EXPECT_EQ(down.rank_cols, 28672 / 8);
  // Vocabulary padded to a multiple of 64 (128256 already is), split 8 ways.
  EXPECT_EQ(group(inv, "embed_tokens.weight").rank_rows, 128256 / 8);
  EXPECT_EQ(group(inv, "norm.weight").rank_rows, 8192);  // replicated
}

TEST(tensor_inventory, kv_heads_replicate_when_tp_exceeds_them) {
  EXPECT_EQ(gm::kv_heads_per_rank(8, 4), 2);
  EXPECT_EQ(gm::kv_heads_per_rank(8, 8), 1);
  EXPECT_EQ(gm::kv_heads_per_rank(4, 8), 1);
  // Qwen3-30B-A3B: 32 query heads, 4 KV heads; at tp=8 each GPU holds a full copy of one KV head.
  const auto inv = gm::build_inventory(gm::resolve_model("qwen3-30b-a3b"), 8);
  const auto& k = group(inv, "layers.*.self_attn.k_proj.weight");
  EXPECT_EQ(k.rows, 4 * 128);
  EXPECT_EQ(k.rank_rows, 128);
}

TEST(tensor_inventory, tp_must_divide_heads) {
  const auto qwen = gm::resolve_model("qwen2.5-7b");  // 28 heads, 4 KV heads
  EXPECT_THROW(gm::build_inventory(qwen, 8), gpucal::input_error);
  EXPECT_THROW(gm::build_inventory(qwen, 3), gpucal::input_error);
  EXPECT_THROW(gm::build_inventory(qwen, 0), gpucal::input_error);
  EXPECT_NO_THROW(gm::build_inventory(qwen, 4));
  try {
    gm::build_inventory(qwen, 8);
  } catch (const gpucal::input_error& e) {
    EXPECT_NE(std::string(e.what()).find("--tensor-parallel-size"), std::string::npos) << e.what();
  }
}

TEST(tensor_inventory, experts_split_along_intermediate) {
  const auto inv = gm::build_inventory(gm::resolve_model("mixtral-8x7b"), 2);
  const auto& up = group(inv, "layers.*.mlp.experts.*.up_proj.weight");
  EXPECT_EQ(up.count, 32 * 8);
  EXPECT_EQ(up.rank_rows, 14336 / 2);
  EXPECT_EQ(group(inv, "layers.*.mlp.gate.weight").rank_rows, 8);  // router replicated
}

}  // namespace
