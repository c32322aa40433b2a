// Paged decode attention over batch x context, bf16 and fp8 KV: achieved
// GB/s counts the KV bytes read (every cached token's K and V once).
// Block tables are a random permutation of the pool, as a long-running
// server's are. The Llama-3-8B attention shape: 32 query heads, 8 KV heads,
// head_dim 128, block size 16. bm_paged_attention_v2 runs kernel version 2
// (flash-decoding, its own split) on the same cases, so one run compares them;
// the fit reads version 1 until measurements make v2 the default.
// bm_prefill_attention runs causal prefill attention (tensor cores) for one
// sequence's chunk after a cached prefix, at the same head shape: TFLOP/s
// counts the attended pairs (prefill_attention_flops), and the fit reads its
// share of the bf16 peak; bm_prefill_attention_v2 runs version 2 (cp.async,
// double-buffered tiles) on the same cases.
//   gpucal_bench --benchmark_filter='bm_(paged|prefill)_attention'

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "bench_env.hpp"
#include "gpucal/kernels/bandwidth.hpp"
#include "gpucal/kernels/device_buffer.hpp"
#include "gpucal/kernels/device_query.hpp"
#include "gpucal/kernels/paged_attention.hpp"
#include "gpucal/kernels/prefill_attention.hpp"

namespace gpucal::bench {

namespace {

constexpr int q_heads = 32, kv_heads = 8, head_dim = 128, block_size = 16;
// The decode cases, for the benchmark arguments and the plan alike.
constexpr int decode_batches[] = {1, 16, 64, 256}, decode_contexts[] = {512, 4096, 16384};

// KV bytes one launch reads, and launches per timed region: the cache is far
// larger than L2 for the interesting cases; small ones repeat in a region.
double kv_bytes_of(int batch, int context, kernels::kv_dtype dtype) {
  return kernels::paged_attention_kv_bytes(static_cast<std::int64_t>(batch) * context, kv_heads, head_dim, dtype);
}
int inner_for(double kv_bytes) { return static_cast<int>(std::clamp(2e8 / kv_bytes, 1.0, 200.0)); }

// K and V caches of `blocks` blocks of random values, and a block table that
// is a random permutation of them, as a long-running server's are.
struct random_paged_cache {
  kernels::device_buffer<std::uint8_t> k, v;
  kernels::device_buffer<std::int32_t> tables;
  kernels::kv_dtype dtype;

  // The arguments both attention kernels share, for queries q and output out.
  kernels::paged_attention_common view(const void* q, void* out, int max_blocks_per_seq) const {
    kernels::paged_attention_common a;
    a.q = q;
    a.k_cache = k.data();
    a.v_cache = v.data();
    a.cache_dtype = dtype;
    a.k_scale = a.v_scale = 0.05f;
    a.block_tables = tables.data();
    a.max_blocks_per_seq = max_blocks_per_seq;
    a.out = out;
    a.q_heads = q_heads;
    a.kv_heads = kv_heads;
    a.head_dim = head_dim;
    a.block_size = block_size;
    a.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
    return a;
  }

  static std::size_t half_bytes(std::int64_t blocks, kernels::kv_dtype dtype) {  // K (or V) alone
    return static_cast<std::size_t>(kernels::paged_attention_kv_bytes(blocks * block_size, kv_heads, head_dim, dtype) / 2);
  }
  random_paged_cache(std::int64_t blocks, kernels::kv_dtype dtype_) : k(half_bytes(blocks, dtype_)), v(k.size()), dtype(dtype_) {
    if (dtype == kernels::kv_dtype::bf16) {
      kernels::fill_random_bf16(k.data(), k.size() / 2, -1, 1, 1, nullptr);
      kernels::fill_random_bf16(v.data(), v.size() / 2, -1, 1, 2, nullptr);
    } else {
      kernels::fill_random_fp8_e4m3(k.data(), k.size(), -2, 2, 1, nullptr);
      kernels::fill_random_fp8_e4m3(v.data(), v.size(), -2, 2, 2, nullptr);
    }
    std::vector<std::int32_t> perm(static_cast<std::size_t>(blocks));
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), std::mt19937(7));
    tables = kernels::to_device(perm);
  }
};

void paged_attention_case(benchmark::State& state, int version) {
  const int batch = static_cast<int>(state.range(0)), context = static_cast<int>(state.range(1));
  const auto dtype = state.range(2) == 0 ? kernels::kv_dtype::bf16 : kernels::kv_dtype::fp8_e4m3;
  const int blocks_per_seq = (context + block_size - 1) / block_size;
  const std::int64_t num_blocks = static_cast<std::int64_t>(batch) * blocks_per_seq;
  if (2.0 * static_cast<double>(random_paged_cache::half_bytes(num_blocks, dtype)) > 0.8 * static_cast<double>(kernels::free_device_bytes())) {
    state.SkipWithError("KV cache larger than free device memory");
    return;
  }
  const random_paged_cache cache(num_blocks, dtype);
  std::vector<std::int32_t> lens(static_cast<std::size_t>(batch), context);
  const auto dlens = kernels::to_device(lens);
  kernels::device_buffer<std::uint16_t> q(static_cast<std::size_t>(batch) * q_heads * head_dim), out(q.size());
  kernels::fill_random_bf16(q.data(), q.size(), -1, 1, 3, nullptr);

  kernels::paged_attention_args a;
  static_cast<kernels::paged_attention_common&>(a) = cache.view(q.data(), out.data(), blocks_per_seq);
  a.context_lens = dlens.data();
  a.batch = batch;
  a.max_context_len = context;
  kernels::device_buffer<std::uint8_t> ws(version == 1 ? kernels::paged_attention_workspace_bytes(a)
                                                        : kernels::paged_attention_v2_workspace_bytes(a));
  a.workspace = ws.data();
  const auto launch = [&] { version == 1 ? kernels::paged_attention(a, nullptr) : kernels::paged_attention_v2(a, nullptr); };

  const double kv_bytes = kv_bytes_of(batch, context, dtype);
  const int inner = inner_for(kv_bytes);
  for (int i = 0; i < warmup_launches; ++i) launch();
  run_timed(state, inner, [&](int) { launch(); });
  state.counters["GB/s"] = benchmark::Counter(kv_bytes / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["kv_bytes"] = kv_bytes;
  state.SetLabel(dtype == kernels::kv_dtype::bf16 ? "bf16 KV" : "fp8 KV");
}

// One sequence: `prefix` cached tokens, then a chunk of `chunk` queries (their K and V in the cache too).
double prefill_flops_of(int prefix, int chunk) { return kernels::prefill_attention_flops(chunk, prefix + chunk, q_heads, head_dim); }
int prefill_inner_for(double flops) { return static_cast<int>(std::clamp(2e11 / flops, 1.0, 200.0)); }

void prefill_attention_case(benchmark::State& state, int version) {
  const int prefix = static_cast<int>(state.range(0)), chunk = static_cast<int>(state.range(1));
  const auto dtype = state.range(2) == 0 ? kernels::kv_dtype::bf16 : kernels::kv_dtype::fp8_e4m3;
  const int context = prefix + chunk, blocks = (context + block_size - 1) / block_size;
  const random_paged_cache cache(blocks, dtype);
  const std::vector<std::int32_t> seq{0, chunk, context};  // query start, query length, context length
  const auto dseq = kernels::to_device(seq);
  kernels::device_buffer<std::uint16_t> q(static_cast<std::size_t>(chunk) * q_heads * head_dim), out(q.size());
  kernels::fill_random_bf16(q.data(), q.size(), -1, 1, 3, nullptr);

  kernels::prefill_attention_args a;
  static_cast<kernels::paged_attention_common&>(a) = cache.view(q.data(), out.data(), blocks);
  a.query_starts = dseq.data();
  a.query_lens = dseq.data() + 1;
  a.context_lens = dseq.data() + 2;
  a.sequences = 1;
  a.max_query_len = chunk;
  const double flops = prefill_flops_of(prefix, chunk);
  const int inner = prefill_inner_for(flops);
  const auto launch = [&] { version == 1 ? kernels::prefill_attention(a, nullptr) : kernels::prefill_attention_v2(a, nullptr); };
  for (int i = 0; i < warmup_launches; ++i) launch();
  run_timed(state, inner, [&](int) { launch(); });
  state.counters["TFLOP/s"] = benchmark::Counter(flops / 1e12, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["flops"] = flops;
  state.SetLabel(dtype == kernels::kv_dtype::bf16 ? "bf16 KV" : "fp8 KV");
}

struct prefill_shape {
  int prefix, chunk, fp8;
};
const prefill_shape prefill_shapes[] = {{0, 512, 0},  {0, 1024, 0},    {0, 2048, 0},   {0, 4096, 0},
                                        {0, 8192, 0}, {8192, 2048, 0}, {0, 4096, 1}};

void prefill_args(benchmark::internal::Benchmark* b) {
  for (const auto& p : prefill_shapes) b->Args({p.prefix, p.chunk, p.fp8});
}

void bm_prefill_attention_body(benchmark::State& state) { prefill_attention_case(state, 1); }
void bm_prefill_attention_v2_body(benchmark::State& state) { prefill_attention_case(state, 2); }

void bm_paged_attention_body(benchmark::State& state) { paged_attention_case(state, 1); }
void bm_paged_attention_v2_body(benchmark::State& state) { paged_attention_case(state, 2); }

void attention_args(benchmark::internal::Benchmark* b) {
  for (std::int64_t dtype : {0, 1})
    for (const int batch : decode_batches)
      for (const int context : decode_contexts) b->Args({batch, context, dtype});
}

void plan_attention(std::vector<case_work>& out) {
  for (const auto dtype : {kernels::kv_dtype::bf16, kernels::kv_dtype::fp8_e4m3})
    for (const int batch : decode_batches)
      for (const int context : decode_contexts) {
        const double kv = kv_bytes_of(batch, context, dtype);
        for (const char* name : {"bm_paged_attention", "bm_paged_attention_v2"})
          out.push_back({name, "", static_cast<double>(warmup_launches + timed_iterations * inner_for(kv)), 0, kv, kv});
      }
  for (const auto& p : prefill_shapes) {
    const double flops = prefill_flops_of(p.prefix, p.chunk);
    const double kv = kernels::paged_attention_kv_bytes(p.prefix + p.chunk, kv_heads, head_dim,
                                                        p.fp8 ? kernels::kv_dtype::fp8_e4m3 : kernels::kv_dtype::bf16);
    for (const char* name : {"bm_prefill_attention", "bm_prefill_attention_v2"})
      out.push_back({name, "bf16", static_cast<double>(warmup_launches + timed_iterations * prefill_inner_for(flops)), flops, kv, kv});
  }
}

}  // namespace

const auto* const registered =
    register_case("bm_paged_attention", bm_paged_attention_body)->Apply(attention_args)->ArgNames({"batch", "context", "fp8"});
const auto* const registered_v2 =
    register_case("bm_paged_attention_v2", bm_paged_attention_v2_body)->Apply(attention_args)->ArgNames({"batch", "context", "fp8"});
const auto* const registered_prefill =
    register_case("bm_prefill_attention", bm_prefill_attention_body)->Apply(prefill_args)->ArgNames({"prefix", "chunk", "fp8"});
const auto* const registered_prefill_v2 =
    register_case("bm_prefill_attention_v2", bm_prefill_attention_v2_body)->Apply(prefill_args)->ArgNames({"prefix", "chunk", "fp8"});
const int planned = register_planner(plan_attention);

}  // namespace gpucal::bench
