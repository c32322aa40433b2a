// GPU: the reference engine against the host forward. A two-layer model with
// fresh random weights (uploaded to both) runs three requests through the
// scheduler (chunked prefill, then decode) for every step until they finish;
// each step's logits are compared with the host forward over the same batch
// by ||got - ref|| / ||ref||: <= 2e-2 for bf16 and w4a16 (bf16 roundings at
// the same points, FP32 against double accumulation), <= 6e-2 for fp8 (the
// per-tensor activation quantization amplifies those differences). Greedy
// tokens must be the first argmax of the engine's own logits. The same run
// with CUDA graphs: decode steps captured once per batch size and replayed
// (three batch sizes as the requests finish), under the same bounds.
#include <gtest/gtest.h>

#include <cmath>

#include "../kernels/gpu_fixture.hpp"
#include "gpucal/engine/engine.hpp"
#include "gpucal/engine/host_forward.hpp"
#include "gpucal/engine/scheduler.hpp"
#include "gpucal/kernels/block_allocator.hpp"

namespace {

using namespace gpucal::engine;

engine_model two_layers(linear_format f) {
  engine_model m;
  m.name = "two-layer";
  m.hidden = 256;
  m.layers = m.model_layers = 2;
  m.q_heads = 8;
  m.kv_heads = 2;
  m.head_dim = 64;
  m.intermediate = 512;
  m.vocab = 1000;
  m.qkv_bias = true;
  m.rms_eps = 1e-5;
  m.rope_theta = 500000;
  m.rope_scaling = gpucal::kernels::llama3_rope_scaling{};
  m.format = f;
  return m;
}

double rel_norm_error(const std::vector<float>& got, const std::vector<float>& ref) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    num += (got[i] - ref[i]) * static_cast<double>(got[i] - ref[i]);
    den += static_cast<double>(ref[i]) * ref[i];
  }
  return std::sqrt(num / den);
}

class engine_gpu_test : public gpucal::test::gpu_test, public ::testing::WithParamInterface<linear_format> {};

// Three requests through the scheduler, every step against the host forward.
void run_against_host(linear_format format, bool cuda_graphs) {
  const engine_model m = two_layers(format);
  const host_weights w = random_host_weights(m, 1234 + static_cast<int>(format));
  engine_options o;
  o.cuda_graphs = cuda_graphs;
  o.max_num_seqs = 4;
  o.max_num_batched_tokens = 48;
  o.max_model_len = 256;
  o.block_size = 16;
  o.num_blocks = 40;
  reference_engine gpu(m, o, w);
  EXPECT_EQ(gpu.memory().weights_bytes, weight_bytes(m));
  EXPECT_EQ(gpu.memory().num_blocks, 40);
  EXPECT_GE(gpu.memory().activation_reserved_bytes, gpu.memory().activation_peak_bytes);
  // At least the residual stream, its next value and one projection output are live at once.
  EXPECT_GE(gpu.memory().activation_peak_bytes, 3 * o.max_num_batched_tokens * m.hidden * 2);

  host_forward host(m, w, 40, 16);
  gpucal::kernels::block_allocator blocks(40, 16);
  scheduler s(blocks, {o.max_num_seqs, o.max_num_batched_tokens, o.max_model_len}, static_cast<std::int32_t>(m.vocab), 7);
  s.add({1, 70, 4});
  s.add({2, 17, 3});
  s.add({3, 5, 5});
  const double bound = format == linear_format::fp8 ? 6e-2 : 2e-2;
  int steps = 0;
  while (!s.idle()) {
    const step_plan p = s.schedule();
    const forward_batch b = to_forward_batch(p, gpu.max_blocks_per_seq(), 16);
    std::vector<float> logits;
    const std::vector<std::int32_t> tokens = gpu.step(b, &logits);
    const std::vector<float> ref = host.forward(b);
    ASSERT_EQ(logits.size(), ref.size());
    EXPECT_LE(rel_norm_error(logits, ref), bound) << "step " << steps;
    for (std::size_t r = 0; r < tokens.size(); ++r) {
      const auto row = logits.begin() + static_cast<std::ptrdiff_t>(r * static_cast<std::size_t>(m.vocab));
      ASSERT_EQ(tokens[r], std::max_element(row, row + m.vocab) - row) << "step " << steps << " row " << r;
    }
    s.complete(p, tokens);
    ASSERT_LT(++steps, 100);
  }
  EXPECT_EQ(s.generated(1).size(), 4u);
  EXPECT_EQ(s.generated(3).size(), 5u);
  EXPECT_GE(steps, 6);  // 92 prompt tokens over 48-token steps, then decodes
  if (cuda_graphs) {
    EXPECT_GE(gpu.memory().cuda_graphs_captured, 2);  // decode batches of 3, 2 and 1 as the requests finish
    // Some graph ran again with new inputs: more decode steps from graphs than graphs.
    EXPECT_GT(gpu.memory().cuda_graph_launches, gpu.memory().cuda_graphs_captured);
  } else {
    EXPECT_EQ(gpu.memory().cuda_graphs_captured, 0);
    EXPECT_EQ(gpu.memory().cuda_graph_launches, 0);
  }
}

TEST_P(engine_gpu_test, steps_match_the_host_forward) {
  if (GetParam() == linear_format::fp8) GPUCAL_REQUIRE_CC(8, 9);
  run_against_host(GetParam(), false);
}

TEST_P(engine_gpu_test, decode_graphs_match_the_host_forward) {
  if (GetParam() == linear_format::fp8) GPUCAL_REQUIRE_CC(8, 9);
  run_against_host(GetParam(), true);
}

class engine_memory_gpu_test : public gpucal::test::gpu_test {};

TEST_F(engine_memory_gpu_test, pool_is_what_the_budget_leaves) {
  const engine_model m = two_layers(linear_format::bf16);
  engine_options o;
  o.gpu_memory_utilization = 0.05;
  o.max_num_batched_tokens = 512;
  o.max_num_seqs = 8;
  o.max_model_len = 1024;
  reference_engine gpu(m, o);
  const engine_memory& e = gpu.memory();
  EXPECT_EQ(e.budget_bytes, static_cast<std::int64_t>(std::floor(static_cast<double>(e.device_total_bytes) * 0.05)));
  EXPECT_EQ(e.block_bytes, 2 * m.layers * 16 * m.kv_width() * 2);
  EXPECT_EQ(e.num_blocks,
            (e.budget_bytes - e.weights_bytes - e.activation_reserved_bytes - e.non_allocator_bytes - e.inputs_bytes) /
                e.block_bytes);
  EXPECT_EQ(e.kv_pool_bytes, e.num_blocks * e.block_bytes);
  EXPECT_EQ(e.profile_tokens, 512);
  EXPECT_EQ(e.profile_rows, 8);
  EXPECT_GT(e.non_allocator_bytes, 0);
  // A decode step over random weights runs and samples in range.
  forward_batch b(gpu.max_blocks_per_seq());
  b.append_sequence({1, 2, 3}, 0, {0}, 16, true);
  const auto t = gpu.step(b);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_GE(t[0], 0);
  EXPECT_LT(t[0], m.vocab);
}

INSTANTIATE_TEST_SUITE_P(formats, engine_gpu_test,
                         ::testing::Values(linear_format::bf16, linear_format::fp8, linear_format::w4a16),
                         [](const auto& p) { return std::string(linear_format_name(p.param)); });

}  // namespace
