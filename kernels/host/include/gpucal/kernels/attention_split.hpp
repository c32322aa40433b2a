// How paged decode attention v2 splits a context into partitions (split-KV,
// flash-decoding): enough (sequence, KV head, partition) blocks to fill the
// GPU twice over, partitions of at least 256 tokens, at most 8192 tokens and
// at most 2047 KV blocks (the block-table slice each CTA stages in shared
// memory), in multiples of 64 tokens. Host code, tested on the CPU.
#pragma once

#include <cstdint>

namespace gpucal::kernels {

struct attention_split {
  int partition_tokens = 0;  ///< context tokens per partition, a multiple of 64
  int partitions = 1;        ///< ceil(max_context_len / partition_tokens), at least 1
  int table_entries = 0;     ///< block-table entries one partition can touch: partition_tokens / block_size + 2
};

/// The split for `batch` sequences of at most `max_context_len` tokens, `kv_heads`
/// KV heads, blocks of `block_size` tokens, on a GPU of `sms` multiprocessors.
/// Requires batch, kv_heads, block_size, sms >= 1 and max_context_len >= 0.
attention_split choose_attention_split(std::int64_t batch, int kv_heads, int max_context_len, int block_size, int sms);

}  // namespace gpucal::kernels
