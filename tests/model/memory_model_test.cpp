// The memory model: storage formats, the engine's budget arithmetic, the
// activation term, settings resolution, fit verdicts and bad input. Every
// expectation is computed here from the formula it checks.
#include <gtest/gtest.h>

#include <cmath>

#include "gpucal/model/catalog.hpp"
#include "gpucal/model/errors.hpp"
#include "gpucal/model/memory_model.hpp"

namespace gm = gpucal::model;

namespace {

gm::memory_estimate estimate(const char* model, const char* gpu, gm::estimate_options opt = {},
                             const char* engine = "vllm@0.11") {  // the worked examples below follow 0.11's accounting
  return gm::estimate_memory(gm::resolve_model(model), gm::resolve_gpu(gpu), gm::resolve_engine(engine),
                             gm::default_coefficients(), opt);
}

double role_bytes(const gm::memory_estimate& e, const std::string& role) {
  for (const auto& r : e.weights_by_role)
    if (r.role == role) return r.bytes;
  return -1;
}

TEST(linear_weight_bytes, formats) {
  const gm::quant_spec none;
  EXPECT_EQ(gm::linear_weight_bytes(none, gm::dtype::bfloat16, 4096, 4096), 4096.0 * 4096 * 2);
  EXPECT_EQ(gm::linear_weight_bytes(none, gm::dtype::float32, 10, 3), 120.0);

  const auto fp8 = gm::quant_from_flag("fp8", std::nullopt, std::nullopt);  // per-tensor fp32 scale
  EXPECT_EQ(gm::linear_weight_bytes(fp8, gm::dtype::bfloat16, 4096, 4096), 4096.0 * 4096 + 4);

  const auto int8 = gm::quant_from_flag("w8a8", std::nullopt, std::nullopt);  // per-channel fp32 scales
  EXPECT_EQ(gm::linear_weight_bytes(int8, gm::dtype::bfloat16, 1024, 4096), 1024.0 * 4096 + 1024 * 4);

  // int4, group 128, fp16 scales: 4 + 16/128 = 4.125 bits per weight; AWQ adds 4-bit zeros (4.156).
  const auto gptq = gm::quant_from_flag("gptq", std::nullopt, std::nullopt);
  EXPECT_EQ(gm::linear_weight_bytes(gptq, gm::dtype::float16, 4096, 4096), 4096.0 * 4096 * 4.125 / 8);
  const auto awq = gm::quant_from_flag("awq", std::nullopt, std::nullopt);
  EXPECT_EQ(gm::linear_weight_bytes(awq, gm::dtype::float16, 4096, 4096), 4096.0 * 4096 * (4 + 16.0 / 128 + 4.0 / 128) / 8);
  // A row that is not a multiple of the group: 300 inputs -> 3 groups, 150 bytes of nibbles.
  EXPECT_EQ(gm::linear_weight_bytes(gptq, gm::dtype::float16, 2, 300), 2 * 150 + 2 * 3 * 2.0);
  const auto g64 = gm::quant_from_flag("int4", std::nullopt, 64);
  EXPECT_EQ(g64.group_size, 64);

  gm::quant_spec block;  // DeepSeek's fp8: one fp32 scale per 128 x 128 tile
  block.method = "fp8";
  block.weight = gm::dtype::fp8_e4m3;
  block.granularity = gm::scale_granularity::block;
  block.group_size = 128;
  block.scale_bytes = 4;
  EXPECT_EQ(gm::linear_weight_bytes(block, gm::dtype::bfloat16, 1536, 7168), 1536.0 * 7168 + 12 * 56 * 4);
  EXPECT_EQ(gm::linear_weight_bytes(block, gm::dtype::bfloat16, 576, 7168), 576.0 * 7168 + 5 * 56 * 4);
}

TEST(quant_from_flag, rejects_unknown_values) {
  try {
    gm::quant_from_flag("nf4", std::nullopt, std::nullopt);
    FAIL();
  } catch (const gpucal::input_error& e) {
    EXPECT_NE(std::string(e.what()).find("--quantization"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("awq"), std::string::npos);
  }
}

TEST(memory_model, int4_keeps_16_bit_embeddings_and_lm_head) {
  gm::estimate_options opt;
  opt.quantization = "awq";
  const auto e = estimate("llama-3-8b", "h100-sxm", opt);
  EXPECT_EQ(role_bytes(e, "embedding"), 128256.0 * 4096 * 2);
  EXPECT_EQ(role_bytes(e, "lm_head"), 128256.0 * 4096 * 2);
  EXPECT_EQ(role_bytes(e, "norms"), (32.0 * 2 + 1) * 4096 * 2);
  // Every linear layer at 4 bits + fp16 scale and 4-bit zero per 128 weights.
  const double per_weight = (4 + 16.0 / 128 + 4.0 / 128) / 8;
  EXPECT_DOUBLE_EQ(role_bytes(e, "attention"), 32 * (4096.0 * 4096 * 2 + 1024.0 * 4096 * 2) * per_weight);
  EXPECT_DOUBLE_EQ(role_bytes(e, "mlp"), 32 * 3 * 14336.0 * 4096 * per_weight);
  EXPECT_EQ(e.params, 8'030'261'248);
}

TEST(memory_model, bf16_weights_are_two_bytes_per_parameter) {
  const auto e = estimate("llama-3-8b", "a100-80gb");
  EXPECT_EQ(e.weights_bytes, 2 * 8'030'261'248LL);
  EXPECT_EQ(e.kv.bytes_per_token, 131072);
}

TEST(memory_model, vllm_pool_arithmetic) {
  const auto e = estimate("llama-3-8b", "h100-sxm");
  const auto c = gm::default_coefficients().memory;
  const auto& gpu = gm::resolve_gpu("h100-sxm");
  const std::int64_t total = gpu.cuda_total_memory_bytes.value_or(gpu.memory_bytes);
  EXPECT_EQ(e.gpu_total_bytes, total);
  const auto budget = static_cast<std::int64_t>(std::floor(static_cast<double>(total) * 0.9));
  EXPECT_EQ(e.budget_bytes, budget);
  // vLLM charges weights, the profiled activation peak and non-torch memory; the
  // CUDA context and CUDA graphs sit outside total x utilization.
  const std::int64_t pool = budget - 2 * 8'030'261'248LL - e.activation.peak_bytes - static_cast<std::int64_t>(c.non_torch_bytes.value);
  EXPECT_EQ(e.kv_pool_bytes, pool);
  EXPECT_EQ(e.block_bytes, 16 * 131072);
  EXPECT_EQ(e.num_blocks, pool / (16 * 131072));
  EXPECT_EQ(e.max_tokens, e.num_blocks * 16);
  EXPECT_DOUBLE_EQ(e.max_concurrency, static_cast<double>(e.max_tokens) / 8192);
  EXPECT_EQ(e.outside_bytes, static_cast<std::int64_t>(c.cuda_context_bytes.value + c.cuda_graph_bytes.value));
  EXPECT_EQ(e.headroom_bytes, total - budget - e.outside_bytes);
  EXPECT_TRUE(e.fits);
  EXPECT_EQ(e.coefficients_source, "default");
}

TEST(memory_model, activation_follows_vllm_profile_run) {
  // vLLM on an 80 GB GPU: an 8192-token forward and a sampler pass over 1024 rows.
  const auto e = estimate("llama-3-8b", "h100-sxm");
  EXPECT_EQ(e.activation.forward_tokens, 8192);
  EXPECT_EQ(e.activation.sampler_rows, 1024);
  // Widest dense stage: residual + hidden (2 x 4096) + gate|up (2 x 14336) + silu*up (14336), bf16.
  EXPECT_EQ(e.activation.forward_bytes, 8192.0 * (2 * 4096 + 3 * 14336) * 2);
  // Sampler: hidden states of the forward + bf16 logits + 3 fp32 copies over 128256 columns.
  EXPECT_EQ(e.activation.sampler_bytes, 8192.0 * 4096 * 2 + 1024.0 * 128256 * (2 + 3 * 4));
  EXPECT_EQ(e.activation.peak_bytes,
            static_cast<std::int64_t>(std::llround(std::max(e.activation.forward_bytes, e.activation.sampler_bytes))));

  // Vocabulary matters: the same shapes with Llama-2's 32000-token vocabulary sample 4x less.
  gm::estimate_options opt;
  opt.max_num_seqs = 256;
  const auto small = estimate("llama-3-8b", "h100-sxm", opt);
  EXPECT_EQ(small.activation.sampler_bytes, 8192.0 * 4096 * 2 + 256.0 * 128256 * 14);
  EXPECT_LT(small.activation.peak_bytes, e.activation.peak_bytes);
}

TEST(memory_model, engine_defaults_depend_on_gpu_memory) {
  const auto big = estimate("llama-3-8b", "h100-sxm");
  EXPECT_EQ(big.settings.max_num_batched_tokens, 8192);
  EXPECT_EQ(big.settings.max_num_seqs, 1024);
  const auto small = estimate("llama-3-8b", "l4");
  EXPECT_EQ(small.settings.max_num_batched_tokens, 2048);
  EXPECT_EQ(small.settings.max_num_seqs, 256);
  // vLLM keeps the small defaults on A100s whatever their memory (a name check in arg_utils.py).
  const auto a100 = estimate("llama-3-8b", "a100-80gb");
  EXPECT_EQ(a100.settings.max_num_batched_tokens, 2048);
  EXPECT_EQ(a100.settings.max_num_seqs, 256);
}

TEST(memory_model, flags_override_defaults_and_say_so) {
  gm::estimate_options opt;
  opt.gpu_memory_utilization = 0.8;
  opt.max_model_len = 4096;
  opt.block_size = 32;
  opt.kv_cache_dtype = "fp8";
  const auto e = estimate("llama-3-8b", "h100-sxm", opt);
  EXPECT_EQ(e.settings.memory_fraction, 0.8);
  EXPECT_EQ(e.settings.block_size, 32);
  EXPECT_EQ(e.kv.bytes_per_token, 65536);
  EXPECT_DOUBLE_EQ(e.max_concurrency, static_cast<double>(e.max_tokens) / 4096);
  bool seen = false;
  for (const auto& o : e.settings.origins)
    if (o.name == "block_size") {
      EXPECT_EQ(o.origin, "--block-size");
      seen = true;
    }
  EXPECT_TRUE(seen);
}

TEST(memory_model, batch_limits_are_clamped_like_vllm) {
  gm::estimate_options opt;
  opt.max_num_batched_tokens = 512;  // below the H100 default max_num_seqs of 1024
  const auto e = estimate("llama-3-8b", "h100-sxm", opt);
  EXPECT_EQ(e.settings.max_num_seqs, 512);
  gm::estimate_options both = opt;
  both.max_num_seqs = 600;
  EXPECT_THROW(estimate("llama-3-8b", "h100-sxm", both), gpucal::input_error);
}

TEST(memory_model, tp_shards_weights_and_adds_nccl) {
  gm::estimate_options opt;
  opt.tp = 4;
  const auto e = estimate("llama-3-70b", "h100-sxm", opt);
  const auto c = gm::default_coefficients().memory;
  EXPECT_EQ(e.nccl_bytes, static_cast<std::int64_t>(c.nccl_bytes_per_gpu.value));
  EXPECT_EQ(e.non_torch_bytes, static_cast<std::int64_t>(c.non_torch_bytes.value));
  // vLLM 0.11 sets up NCCL before its baseline snapshot: outside the budget, like the CUDA context.
  EXPECT_TRUE(e.engine.outside(gm::memory_item::nccl));
  EXPECT_EQ(e.outside_bytes, e.nccl_bytes + e.cuda_context_bytes + e.cuda_graph_bytes);
  // Everything but norms splits 4 ways (8 KV heads -> 2 per GPU, vocab 128256 -> 32064 rows).
  const double norms = (80.0 * 2 + 1) * 8192 * 2;
  EXPECT_DOUBLE_EQ(static_cast<double>(e.weights_bytes), (2.0 * 70'553'706'496 - norms) / 4 + norms);
  EXPECT_EQ(e.kv.bytes_per_token, 2 * 80 * 2 * 128 * 2);
  const auto single = estimate("llama-3-70b", "h100-sxm");
  EXPECT_EQ(single.nccl_bytes, 0);
}

TEST(memory_model, sglang_charges_no_activation_and_keeps_its_fraction) {
  const auto e = estimate("llama-3-8b", "h100-sxm", {}, "sglang");
  EXPECT_FALSE(e.engine.charges(gm::memory_item::activation_peak));
  EXPECT_EQ(e.settings.block_size, e.engine.block_size);
  // SGLang sizes its pool from free memory after loading: the CUDA context and the
  // weights come out of mem_fraction_static; cuBLAS workspaces, activations and graphs
  // are allocated later, from the rest (sglang.json cites ModelRunner.profile_max_num_token).
  EXPECT_FALSE(e.engine.charges(gm::memory_item::non_torch));
  const std::int64_t expected = e.budget_bytes - e.weights_bytes - e.cuda_context_bytes;
  EXPECT_EQ(e.charged_bytes, e.weights_bytes + e.cuda_context_bytes);
  EXPECT_EQ(e.kv_pool_bytes, static_cast<std::int64_t>(std::floor(static_cast<double>(expected) * e.engine.kv_pool_factor)));
}

TEST(memory_model, sglang_0_5_23_default_fraction_follows_its_formula) {
  // SGLang 0.5.23's default mem_fraction_static (arg_groups/memory_hook.py,
  // handle_gpu_memory_settings), worked here from nvidia-smi's memory.total:
  // reserved = 512 + max(chunked_prefill, 2048) x 1.5 + tp x pp / 8 x 1024
  //          + decode max_bs x 2 + prefill graphs (8 MiB x 58 capture sizes at
  //            8192 for MHA, 1536 for MLA), decode max_bs 256 at tp < 4, else 512,
  // at least 10240 above 60 GiB; f = round((mem - reserved) / mem, 3).
  const auto fraction = [](double mem_mib, int tp, bool mla) {
    const double max_bs = tp < 4 ? 256 : 512;
    const double prefill_graphs = mla ? 1536 : 8 * 58;
    double reserved = 512 + 8192 * 1.5 + tp / 8.0 * 1024 + max_bs * 2 + prefill_graphs;
    reserved = std::max(reserved, 10240.0);
    return std::round((mem_mib - reserved) / mem_mib * 1000) / 1000;
  };
  gm::estimate_options one;
  const auto h100 = estimate("llama-3-8b", "h100-sxm", one, "sglang@0.5.23");
  EXPECT_DOUBLE_EQ(h100.settings.memory_fraction, fraction(81559, 1, false));  // 0.830
  EXPECT_DOUBLE_EQ(h100.settings.memory_fraction, 0.830);
  EXPECT_EQ(h100.settings.max_num_batched_tokens, 8192);
  EXPECT_EQ(estimate("llama-3-8b", "h100-sxm", one, "sglang@0.5.3").settings.memory_fraction, 0.835);
  gm::estimate_options two;
  two.tp = 2;
  EXPECT_DOUBLE_EQ(estimate("llama-3-8b", "h200", two, "sglang").settings.memory_fraction, fraction(143771, 2, false));
  // MLA models reserve 1536 MiB for their prefill graphs.
  gm::estimate_options eight;
  eight.tp = 8;
  EXPECT_DOUBLE_EQ(estimate("deepseek-v3", "h200", eight, "sglang").settings.memory_fraction, fraction(143771, 8, true));  // 0.886
  EXPECT_DOUBLE_EQ(estimate("llama-3-70b", "h200", eight, "sglang").settings.memory_fraction, fraction(143771, 8, false));  // 0.893
  EXPECT_LT(fraction(143771, 8, true), fraction(143771, 8, false));
}

TEST(memory_model, sglang_0_5_23_pool_on_a_real_startup_log) {
  // A recent SGLang 0.5.x startup log (lmsysorg/sglang:latest, 2026-08-27; the
  // server.log quoted in github.com/mystous/vllm_hybrid, commit f056911,
  // shadow_assists/features/IDE_023/whitepaper/IDE_023_TSK_043_RAW_DATA.md):
  // Qwen3-30B-A3B-FP8 on one H100 80GB HBM3, mem_fraction_static 0.83,
  // chunked_prefill_size 8192, context_len 40960, bf16 KV. Its lines (GB = GiB):
  //   Load weight begin. avail mem=78.48 GB
  //   Load weight end. ... avail mem=49.33 GB, mem usage=29.15 GB.
  //   KV Cache is allocated. dtype: torch.bfloat16, #tokens: 392920, K size: 17.99 GB, V size: 17.99 GB
  // The rule, worked by hand from the log: KV = f x B - (B - A) = 0.83 x 78.48 -
  // (78.48 - 49.33) = 35.99 GiB; 48 layers x 2 x 4 KV heads x 128 x 2 B = 98,304 B
  // per token gives 393,085 tokens, the logged 392,920 within the log's rounding.
  const double by_hand_gib = 0.83 * 78.48 - (78.48 - 49.33);
  const double by_hand_tokens = std::floor(by_hand_gib * 1073741824.0 / 98304);
  EXPECT_NEAR(by_hand_tokens / 392920, 1.0, 0.001);
  gm::estimate_options opt;
  opt.max_model_len = 40960;
  const auto e = gm::estimate_memory(gm::resolve_model(GPUCAL_TEST_DATA_DIR "/configs/Qwen--Qwen3-30B-A3B-FP8_config.json"),
                                     gm::resolve_gpu("h100-sxm"), gm::resolve_engine("sglang@0.5.23"), gm::default_coefficients(), opt);
  EXPECT_DOUBLE_EQ(e.settings.memory_fraction, 0.83);  // the default for this GPU, tp and attention kind
  EXPECT_EQ(e.settings.max_num_batched_tokens, 8192);
  EXPECT_EQ(e.kv.bytes_per_token, 98304);
  // gpucal on default coefficients: weights within 0.5 %, tokens within 1 % of the log.
  EXPECT_NEAR(static_cast<double>(e.weights_bytes) / 1073741824.0 / 29.15, 1.0, 0.005);
  EXPECT_NEAR(static_cast<double>(e.max_tokens) / 392920, 1.0, 0.01);
}

TEST(memory_model, mla_uses_the_engines_mla_block_size) {
  gm::estimate_options opt;
  opt.tp = 8;
  const auto e = estimate("deepseek-v3", "h200", opt);
  EXPECT_EQ(e.settings.block_size, 64);  // 0.11: FlashMLA's 64-token blocks
  // 0.19 and 0.33 pick the backend by GPU and KV dtype: FLASH_ATTN_MLA (16) on
  // Hopper with bf16 KV, FlashMLA (64) with fp8 KV, FlashInfer MLA (32) on Blackwell.
  for (const char* engine : {"vllm@0.19", "vllm@0.33"}) {
    EXPECT_EQ(estimate("deepseek-v3", "h200", opt, engine).settings.block_size, 16) << engine;
    gm::estimate_options fp8 = opt;
    fp8.kv_cache_dtype = "fp8";
    EXPECT_EQ(estimate("deepseek-v3", "h200", fp8, engine).settings.block_size, 64) << engine;
    EXPECT_EQ(estimate("deepseek-v3", "b200", opt, engine).settings.block_size, 32) << engine;
  }
  EXPECT_EQ(estimate("deepseek-v3", "b200", opt).settings.block_size, 128);  // 0.11 on Blackwell: CUTLASS MLA
  EXPECT_EQ(e.kv.bytes_per_token, 70272);
  // The checkpoint's own fp8 128x128-block format applies without a flag.
  EXPECT_TRUE(e.settings.quant.quantized());
  EXPECT_EQ(e.settings.quant.granularity, gm::scale_granularity::block);
}

TEST(memory_model, too_large_model_does_not_fit_and_says_by_how_much) {
  const auto e = estimate("llama-3-70b", "h100-sxm");
  EXPECT_FALSE(e.fits);
  ASSERT_FALSE(e.failures.empty());
  EXPECT_NE(e.failures.front().find("exceed the budget"), std::string::npos) << e.failures.front();
  EXPECT_EQ(e.kv_pool_bytes, 0);
  EXPECT_EQ(e.num_blocks, 0);
  EXPECT_EQ(e.shortfall_bytes, e.charged_bytes - e.budget_bytes);
  EXPECT_GT(e.shortfall_bytes, 0);
  EXPECT_EQ(e.spare_bytes, 0);
}

TEST(memory_model, pool_too_small_for_one_full_length_request) {
  // Llama-3.1-8B supports 131072 tokens (16 GiB of KV per request); a 24 GB card cannot hold one.
  const auto e = estimate("llama-3.1-8b", "l4");
  EXPECT_FALSE(e.fits);
  EXPECT_EQ(e.request_bytes, 131072LL * 131072);
  ASSERT_FALSE(e.failures.empty());
  EXPECT_NE(e.failures.back().find("max_model_len"), std::string::npos);
  gm::estimate_options opt;
  opt.max_model_len = 8192;
  EXPECT_TRUE(estimate("llama-3.1-8b", "l4", opt).fits);
}

TEST(memory_model, utilization_of_one_leaves_no_room_outside_the_budget) {
  gm::estimate_options opt;
  opt.gpu_memory_utilization = 1.0;
  const auto e = estimate("llama-3-8b", "h100-sxm", opt);
  EXPECT_FALSE(e.fits);  // CUDA context and graphs have nowhere to go
  EXPECT_LT(e.headroom_bytes, 0);
}

template <typename Fn>
void expect_flag_error(Fn fn, const char* flag) {
  try {
    fn();
    ADD_FAILURE() << "no error for " << flag;
  } catch (const gpucal::input_error& e) {
    EXPECT_NE(std::string(e.what()).find(flag), std::string::npos) << e.what();
  }
}

TEST(memory_model, bad_settings_name_the_flag) {
  auto with = [](auto set) {
    gm::estimate_options o;
    set(o);
    return [o] { estimate("llama-3-8b", "h100-sxm", o); };
  };
  expect_flag_error(with([](auto& o) { o.gpu_memory_utilization = 0.0; }), "--gpu-memory-utilization");
  expect_flag_error(with([](auto& o) { o.gpu_memory_utilization = 1.5; }), "--gpu-memory-utilization");
  expect_flag_error(with([](auto& o) { o.gpu_memory_utilization = -0.2; }), "--gpu-memory-utilization");
  expect_flag_error(with([](auto& o) { o.max_model_len = 0; }), "--max-model-len");
  expect_flag_error(with([](auto& o) { o.max_model_len = 200000; }), "--max-model-len");
  expect_flag_error(with([](auto& o) { o.max_num_seqs = -1; }), "--max-num-seqs");
  expect_flag_error(with([](auto& o) { o.max_num_batched_tokens = 0; }), "--max-num-batched-tokens");
  expect_flag_error(with([](auto& o) { o.block_size = 0; }), "--block-size");
  expect_flag_error(with([](auto& o) { o.block_size = 24; }), "--block-size");
  expect_flag_error(with([](auto& o) { o.tp = 3; }), "--tensor-parallel-size");
  expect_flag_error(with([](auto& o) { o.tp = -2; }), "--tensor-parallel-size");
  expect_flag_error(with([](auto& o) { o.dtype = "int8"; }), "--dtype");
  expect_flag_error(with([](auto& o) { o.kv_cache_dtype = "int4"; }), "--kv-cache-dtype");
  expect_flag_error(with([](auto& o) { o.quantization = "bnb"; }), "--quantization");
}

}  // namespace

namespace {

// vLLM 0.19.0 startup logs on one H100 80GB (cudaMemGetInfo total 79.19 GiB),
// gpu_memory_utilization 0.95, max_model_len 8192, max_num_batched_tokens
// 8192, from llm-d-incubation/llm-d-planner at commit d3121e05,
// accuracy/results/v0.19.0/logs/meta-llama-llama-3-1-8b---h100-80gb--tp{1,2}pp1dp1--8192.log:
// "Available KV cache memory: 58.11 GiB" / "GPU KV cache size: 476,016 tokens" at tp 1,
// "Available KV cache memory: 63.76 GiB" / "GPU KV cache size: 1,044,688 tokens" at tp 2.
struct v019_log {
  int tp;
  double available_gib;
  std::int64_t tokens;
};

}  // namespace

TEST(memory_model, vllm_0_19_matches_its_startup_logs) {
  for (const v019_log log : {v019_log{1, 58.11, 476'016}, v019_log{2, 63.76, 1'044'688}}) {
    SCOPED_TRACE(log.tp);
    gm::estimate_options opt;
    opt.tp = log.tp;
    opt.gpu_memory_utilization = 0.95;
    opt.max_model_len = 8192;
    const auto e = estimate("llama-3.1-8b", "h100-sxm", opt, "vllm@0.19");
    // 0.19 charges weights, the profile run's peak and non-torch growth, which at
    // tp > 1 holds NCCL's lazily connected buffers; the context stays outside.
    EXPECT_TRUE(e.engine.charges(gm::memory_item::nccl));
    EXPECT_EQ(e.charged_bytes, e.weights_bytes + e.activation.peak_bytes + e.non_torch_bytes + e.nccl_bytes);
    const double gib = static_cast<double>(e.kv_pool_bytes) / (1 << 30);
    EXPECT_NEAR(gib, log.available_gib, 0.01 * log.available_gib);
    EXPECT_NEAR(static_cast<double>(e.max_tokens), static_cast<double>(log.tokens), 0.01 * static_cast<double>(log.tokens));
    // Tokens as 0.19 logs them: num_blocks // groups x block size.
    EXPECT_EQ(e.max_tokens, e.num_blocks * 16);
  }
}

TEST(memory_model, vllm_0_33_charges_graphs_and_leaves_cublas_outside) {
  gm::estimate_options opt;
  opt.tp = 2;
  const auto e = estimate("llama-3.1-8b", "h100-sxm", opt, "vllm");
  EXPECT_EQ(e.engine.version, "0.33.0");
  EXPECT_DOUBLE_EQ(e.settings.memory_fraction, 0.92);
  // Budget = total x 0.92; charged: weights, the transient peak, NCCL's lazy buffers
  // and the CUDA-graph estimate; cuBLAS handles and the context are in the baseline.
  EXPECT_EQ(e.budget_bytes, static_cast<std::int64_t>(std::floor(static_cast<double>(e.gpu_total_bytes) * 0.92)));
  EXPECT_EQ(e.charged_bytes, e.weights_bytes + e.activation.peak_bytes + e.nccl_bytes + e.cuda_graph_bytes);
  EXPECT_EQ(e.outside_bytes, e.cuda_context_bytes + e.non_torch_bytes);
  EXPECT_EQ(e.kv_pool_bytes, e.budget_bytes - e.charged_bytes);
  // The V2 runner's profiled sampler keeps one fp32 copy of the logits beside
  // the model-dtype ones: rows x vocab x (2 + 4) bytes, over the hidden states.
  const double rows = std::min<double>(1024, 8192), vocab = 128256, hidden = 8192.0 * 4096 * 2;
  EXPECT_DOUBLE_EQ(e.activation.sampler_bytes, hidden + rows * vocab * (2 + 4));
  // Tokens are int(max_concurrency x max_model_len).
  EXPECT_EQ(e.max_tokens, static_cast<std::int64_t>(std::floor(e.max_concurrency * static_cast<double>(e.settings.max_model_len))));
}

// Pipeline parallelism: vLLM's split (get_pp_indices) and the stage with the
// fewest blocks deciding, against vLLM 0.19.0 startup logs of Llama-3.1-8B on
// H100 80GB at pp 2 and 4 (llm-d-planner commit d3121e05,
// meta-llama-llama-3-1-8b---h100-80gb--tp1pp{2,4}dp1--8192.log):
// "GPU KV cache size: 1,075,312 tokens" and "2,257,264 tokens".
TEST(memory_model, pipeline_stages_split_layers_as_vllm_does) {
  const auto m = gm::resolve_model("llama-3.1-8b");  // 32 layers
  const auto two = gm::pipeline_stages(m, 2);
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[0].num_layers(), 16);
  EXPECT_EQ(two[1].first_layer, 16);
  EXPECT_TRUE(two[0].holds_embedding);
  EXPECT_FALSE(two[0].holds_lm_head);
  EXPECT_FALSE(two[1].holds_embedding);
  EXPECT_TRUE(two[1].holds_lm_head);
  // 126 layers over 4 stages: 31 each, the remainder of 2 to the stages before the last, from the last backwards.
  const auto four = gm::pipeline_stages(gm::resolve_model("llama-3.1-405b"), 4);
  ASSERT_EQ(four.size(), 4u);
  EXPECT_EQ(four[0].num_layers(), 31);
  EXPECT_EQ(four[1].num_layers(), 32);
  EXPECT_EQ(four[2].num_layers(), 32);
  EXPECT_EQ(four[3].num_layers(), 31);
  EXPECT_EQ(four[3].first_layer, 95);
  EXPECT_THROW(gm::pipeline_stages(m, 33), gpucal::input_error);
  EXPECT_THROW(gm::pipeline_stages(m, 0), gpucal::input_error);

  for (const auto& [pp, tokens] : {std::pair{2, 1'075'312.0}, std::pair{4, 2'257'264.0}}) {
    SCOPED_TRACE(pp);
    gm::estimate_options opt;
    opt.pp = pp;
    opt.gpu_memory_utilization = 0.95;
    opt.max_model_len = 8192;
    const auto e = estimate("llama-3.1-8b", "h100-sxm", opt, "vllm@0.19");
    ASSERT_EQ(e.stages.size(), static_cast<std::size_t>(pp));
    // Every stage allocates the smallest stage's blocks; the last (LM head and sampler) is the tightest.
    std::int64_t fewest = e.stages.front().num_blocks;
    for (const auto& st : e.stages) fewest = std::min(fewest, st.num_blocks);
    EXPECT_EQ(e.num_blocks, fewest);
    EXPECT_EQ(e.num_blocks, e.stages.back().num_blocks);
    EXPECT_GT(e.stages.front().weights_bytes, e.stages[1].weights_bytes - e.stages[1].weights_bytes / 8);
    EXPECT_NEAR(static_cast<double>(e.max_tokens), tokens, 0.005 * tokens);
    EXPECT_EQ(e.params, estimate("llama-3.1-8b", "h100-sxm").params);  // the whole model's
  }
}
