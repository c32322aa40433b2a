// Partition choice of paged decode attention v2 (see attention_split.hpp).
#include "gpucal/kernels/attention_split.hpp"

#include <algorithm>

namespace gpucal::kernels {

attention_split choose_attention_split(std::int64_t batch, int kv_heads, int max_context_len, int block_size, int sms) {
  constexpr std::int64_t min_tokens = 256, granule = 64;
  // The largest partition a CTA's shared-memory table slice allows: 2047 blocks, 8192 tokens.
  const std::int64_t max_tokens =
      std::max<std::int64_t>(granule, std::min<std::int64_t>(8192, 2047LL * block_size) / granule * granule);
  const std::int64_t context = std::max(1, max_context_len);
  const std::int64_t ctas = batch * kv_heads;
  const std::int64_t want = (2LL * sms + ctas - 1) / ctas;  // partitions per (sequence, KV head) to fill the GPU twice
  std::int64_t tokens = (context + want - 1) / want;
  tokens = std::clamp((tokens + granule - 1) / granule * granule, min_tokens, max_tokens);
  attention_split s;
  s.partition_tokens = static_cast<int>(tokens);
  s.partitions = static_cast<int>((context + tokens - 1) / tokens);
  s.table_entries = static_cast<int>(tokens / block_size + 2);
  return s;
}

}  // namespace gpucal::kernels
