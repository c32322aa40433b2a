// The throughput model against expectations computed here from shapes,
// datasheet figures and the default coefficients: a bandwidth-bound decode
// step, a compute-bound prefill, tensor parallelism, MoE expert counts.
#include <gtest/gtest.h>

#include <cmath>

#include "gpucal/model/catalog.hpp"
#include "gpucal/model/memory_model.hpp"
#include "gpucal/model/throughput_model.hpp"

namespace gm = gpucal::model;

namespace {

struct setup {
  gm::model_spec m;
  gm::gpu_spec gpu;
  gm::engine_profile engine;
  gm::coefficients c;
  gm::resolved_settings s;
};

setup make(const char* model, const char* gpu, int tp = 1) {
  setup x{gm::resolve_model(model), gm::resolve_gpu(gpu), gm::resolve_engine("vllm"), gm::default_coefficients(), {}};
  gm::estimate_options o;
  o.tp = tp;
  x.s = gm::resolve_settings(x.m, x.gpu, x.engine, o, x.gpu.memory_bytes);
  return x;
}

const gm::op_time& op(const gm::step_time& s, const std::string& name) {
  for (const auto& o : s.ops)
    if (o.name == name) return o;
  throw std::runtime_error("no operator " + name);
}

bool has_op(const gm::step_time& s, const std::string& name) {
  for (const auto& o : s.ops)
    if (o.name == name) return true;
  return false;
}

TEST(throughput_model, expected_distinct_experts) {
  EXPECT_DOUBLE_EQ(gm::expected_distinct_experts(8, 2, 1), 2);     // one token touches its top-k
  EXPECT_DOUBLE_EQ(gm::expected_distinct_experts(128, 8, 1), 8);
  EXPECT_NEAR(gm::expected_distinct_experts(8, 2, 1e6), 8, 1e-9);  // many tokens touch them all
  EXPECT_NEAR(gm::expected_distinct_experts(256, 8, 1e5), 256, 1e-9);
  EXPECT_DOUBLE_EQ(gm::expected_distinct_experts(8, 2, 2), 8 * (1 - 0.75 * 0.75));
  EXPECT_EQ(gm::expected_distinct_experts(8, 2, 0), 0);
}

// Llama-3-8B on an H100 SXM at batch 1: every operator streams bytes, so the step is
// bytes / (bandwidth x efficiency) per operator plus the engine's step overhead.
TEST(throughput_model, decode_at_batch_1_is_bandwidth_bound) {
  const setup x = make("llama-3-8b", "h100-sxm");
  const gm::throughput_model perf(x.m, x.gpu, x.s, x.c.throughput, x.engine);
  const double context = 1000;
  const gm::step_time s = perf.decode_step(1, context);

  const double bw = 3350e9;  // H100 SXM HBM3, GB/s (gpus.json)
  const double gemm_eff = x.c.throughput.curve("bf16").memory_efficiency;
  // [N, K] of every linear layer; bytes = weights (N K x 2) + activations in and out ((K + N) x 2).
  const auto gemm_bytes = [](double n, double k) { return n * k * 2 + (k + n) * 2; };
  const double layer_gemm_bytes = gemm_bytes(4096, 4096) + 2 * gemm_bytes(1024, 4096) + gemm_bytes(4096, 4096) +
                                  2 * gemm_bytes(14336, 4096) + gemm_bytes(4096, 14336);
  const double gemm_s = (32 * layer_gemm_bytes + gemm_bytes(128256, 4096)) / (bw * gemm_eff);
  // Attention reads 1000 cached tokens x 4096 bytes (2 x 8 heads x 128 x 2 B) in each of 32 layers.
  const double attn_s = 32 * context * 4096 / (bw * x.c.throughput.decode_attention_efficiency.value);
  // Element-wise: 32 layers x (8 x hidden + 3 x intermediate) x 2 bytes.
  const double ew_s = 32 * (8 * 4096 + 3 * 14336) * 2.0 / (bw * x.c.throughput.hbm_efficiency.value);
  const double overhead_s = x.engine.step_overhead_us.value * 1e-6;

  for (const auto& o : s.ops) {
    if (o.name != "step_overhead") {
      EXPECT_EQ(o.bound_by, gm::bound::memory) << o.name;
    }
  }
  EXPECT_NEAR(s.total_s, gemm_s + attn_s + ew_s + overhead_s, 1e-12);
  EXPECT_NEAR(op(s, "attention").time_s, attn_s, 1e-15);
  EXPECT_FALSE(has_op(s, "allreduce"));
}

// A 4096-token prefill of Llama-3-8B: the GEMMs are compute-bound at the curve's
// efficiency for M = 4096; causal attention costs 4 x heads x head_dim x n(n+1)/2 FLOPs per layer.
TEST(throughput_model, prefill_of_long_prompt_is_compute_bound) {
  const setup x = make("llama-3-8b", "h100-sxm");
  const gm::throughput_model perf(x.m, x.gpu, x.s, x.c.throughput, x.engine);
  const double n = 4096;
  const gm::step_time s = perf.prefill(n);
  const double peak = 989.4e12;  // H100 SXM dense BF16 (gpus.json)
  const double eff = x.c.throughput.curve("bf16").compute_at(n);
  EXPECT_DOUBLE_EQ(eff, 0.78);  // the default curve is flat from M = 4096
  const auto gemm_s = [&](double nn, double k) { return 2 * n * nn * k / (peak * eff); };
  EXPECT_EQ(op(s, "qkv_proj").bound_by, gm::bound::compute);
  EXPECT_NEAR(op(s, "qkv_proj").time_s, 32 * (gemm_s(4096, 4096) + 2 * gemm_s(1024, 4096)), 1e-12);
  EXPECT_NEAR(op(s, "o_proj").time_s, 32 * gemm_s(4096, 4096), 1e-12);
  EXPECT_NEAR(op(s, "gate_up_proj").time_s, 32 * 2 * gemm_s(14336, 4096), 1e-12);
  EXPECT_NEAR(op(s, "down_proj").time_s, 32 * gemm_s(4096, 14336), 1e-12);
  const double attn_flops = 32 * 2.0 * 32 * (2 * 128) * (n * (n + 1) / 2);
  EXPECT_DOUBLE_EQ(op(s, "attention").flops, attn_flops);
  EXPECT_NEAR(op(s, "attention").time_s, attn_flops / (peak * x.c.throughput.prefill_attention_efficiency.value), 1e-12);
  EXPECT_EQ(op(s, "lm_head").bound_by, gm::bound::memory);  // one sampled row
}

TEST(throughput_model, tensor_parallel_halves_gemm_work_and_adds_allreduce) {
  const setup one = make("llama-3-70b", "h100-sxm", 1);
  const setup two = make("llama-3-70b", "h100-sxm", 2);
  const gm::throughput_model p1(one.m, one.gpu, one.s, one.c.throughput, one.engine);
  const gm::throughput_model p2(two.m, two.gpu, two.s, two.c.throughput, two.engine);
  const double batch = 64;
  const gm::step_time s1 = p1.decode_step(batch, 2000), s2 = p2.decode_step(batch, 2000);
  for (const char* name : {"qkv_proj", "o_proj", "gate_up_proj", "down_proj", "attention"})
    EXPECT_DOUBLE_EQ(op(s2, name).flops, op(s1, name).flops / 2) << name;
  EXPECT_FALSE(has_op(s1, "allreduce"));
  // Two ring all-reduces per layer of batch x hidden x 2 bytes over NVLink (450 GB/s per direction).
  const auto& c = two.c.throughput;
  const double per = c.allreduce_latency_us.value * 1e-6 + (2.0 * 1 / 2) * batch * 8192 * 2 / (450e9 * c.allreduce_efficiency.value);
  EXPECT_NEAR(op(s2, "allreduce").time_s, 2 * 80 * per, 1e-12);
  EXPECT_DOUBLE_EQ(gm::allreduce_time_s(1e6, 1, 450, 0.75, 15), 0);
  EXPECT_EQ(p2.link_name(), "NVLink");
}

TEST(throughput_model, moe_decode_streams_only_the_touched_experts) {
  const setup x = make("mixtral-8x7b", "h100-sxm");
  const gm::throughput_model perf(x.m, x.gpu, x.s, x.c.throughput, x.engine);
  // Batch 1: 2 of 8 experts per layer, each 3 x 14336 x 4096 bf16 weights.
  const gm::step_time s = perf.decode_step(1, 100);
  const double expert_weights = 3.0 * 14336 * 4096 * 2;
  EXPECT_NEAR(op(s, "experts").bytes, 32 * 2 * (expert_weights + 2 * (4096 + 14336) * 2 * 1.5), 1.0);
  // A large batch touches all 8.
  const gm::step_time big = perf.decode_step(512, 100);
  EXPECT_GT(op(big, "experts").bytes, 32 * 7.99 * expert_weights);
}

TEST(throughput_model, quantization_picks_the_kernel_family) {
  setup x = make("llama-3-8b", "h100-sxm");
  x.s.quant = gm::quant_from_flag("fp8", std::nullopt, std::nullopt);
  EXPECT_EQ(gm::throughput_model(x.m, x.gpu, x.s, x.c.throughput, x.engine).gemm_kind(), "fp8");
  x.s.quant = gm::quant_from_flag("awq", std::nullopt, std::nullopt);
  EXPECT_EQ(gm::throughput_model(x.m, x.gpu, x.s, x.c.throughput, x.engine).gemm_kind(), "w4a16");
  // Ampere has no fp8 tensor cores: fp8 weights run weight-only.
  setup a = make("llama-3-8b", "a100-80gb");
  a.s.quant = gm::quant_from_flag("fp8", std::nullopt, std::nullopt);
  EXPECT_EQ(gm::throughput_model(a.m, a.gpu, a.s, a.c.throughput, a.engine).gemm_kind(), "w4a16");
}

TEST(throughput_model, pcie_cards_all_reduce_over_pcie_beyond_a_bridge_pair) {
  const setup two = make("llama-3-70b", "h100-pcie", 2);
  const setup four = make("llama-3-70b", "h100-pcie", 4);
  EXPECT_EQ(gm::throughput_model(two.m, two.gpu, two.s, two.c.throughput, two.engine).link_name(), "NVLink");
  EXPECT_EQ(gm::throughput_model(four.m, four.gpu, four.s, four.c.throughput, four.engine).link_name(), "PCIe");
}

TEST(gemm_curve, interpolates_in_log_m) {
  const gm::coefficients coeffs = gm::default_coefficients();
  const auto& c = coeffs.throughput.curve("bf16");
  EXPECT_DOUBLE_EQ(c.compute_at(0.5), c.compute_efficiency.front());
  EXPECT_DOUBLE_EQ(c.compute_at(1e6), c.compute_efficiency.back());
  EXPECT_DOUBLE_EQ(c.compute_at(16), c.compute_efficiency[1]);
  // 32 is halfway between 16 and 64 in log2.
  EXPECT_DOUBLE_EQ(c.compute_at(32), (c.compute_efficiency[1] + c.compute_efficiency[2]) / 2);
}

}  // namespace
