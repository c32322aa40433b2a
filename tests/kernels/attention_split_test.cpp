// The partition choice of paged decode attention v2, worked by hand for an
// H200's 132 SMs (2 x 132 = 264 CTAs wanted).
#include "gpucal/kernels/attention_split.hpp"

#include <gtest/gtest.h>

namespace gk = gpucal::kernels;

TEST(attention_split, large_batches_need_no_split) {
  // 64 sequences x 8 KV heads = 512 CTAs >= 264: one partition of the whole 4096-token context.
  const auto s = gk::choose_attention_split(64, 8, 4096, 16, 132);
  EXPECT_EQ(s.partitions, 1);
  EXPECT_EQ(s.partition_tokens, 4096);
  EXPECT_EQ(s.table_entries, 4096 / 16 + 2);
}

TEST(attention_split, one_sequence_splits_its_context_to_fill_the_gpu) {
  // 8 CTAs want ceil(264 / 8) = 33 partitions: ceil(16384 / 33) = 497 -> 512 tokens, 32 partitions.
  const auto s = gk::choose_attention_split(1, 8, 16384, 16, 132);
  EXPECT_EQ(s.partition_tokens, 512);
  EXPECT_EQ(s.partitions, 32);
  EXPECT_EQ(s.table_entries, 34);
  EXPECT_GE(s.partitions * 8, 132);  // at least one CTA per SM
}

TEST(attention_split, partitions_stay_between_256_and_8192_tokens) {
  // A short context: ceil(100 / 33) = 4 tokens -> at least 256.
  auto s = gk::choose_attention_split(1, 8, 100, 16, 132);
  EXPECT_EQ(s.partition_tokens, 256);
  EXPECT_EQ(s.partitions, 1);
  // An empty batch bound still gives one partition.
  s = gk::choose_attention_split(1, 8, 0, 16, 132);
  EXPECT_EQ(s.partitions, 1);
  // A long context at a large batch: capped at 8192 tokens.
  s = gk::choose_attention_split(64, 8, 131072, 16, 132);
  EXPECT_EQ(s.partition_tokens, 8192);
  EXPECT_EQ(s.partitions, 16);
  // One-token blocks: the table slice caps a partition at 2047 blocks -> 1984 tokens (a multiple of 64).
  s = gk::choose_attention_split(64, 8, 100000, 1, 132);
  EXPECT_EQ(s.partition_tokens, 1984);
  EXPECT_EQ(s.partitions, 51);  // ceil(100000 / 1984)
  EXPECT_LE(s.table_entries, 2047 + 2);
  // Every choice covers the context.
  for (int context : {1, 63, 64, 65, 1000, 4097, 50000})
    for (int batch : {1, 3, 200}) {
      const auto c = gk::choose_attention_split(batch, 4, context, 32, 132);
      EXPECT_GE(static_cast<long long>(c.partitions) * c.partition_tokens, context);
      EXPECT_LT(static_cast<long long>(c.partitions - 1) * c.partition_tokens, context);
      EXPECT_EQ(c.partition_tokens % 64, 0);
    }
}
