// The planner: every returned plan satisfies its own constraints (Little's
// law, KV capacity, latency targets, minimal replicas) for the seed's case
// and three other workloads; infeasible requests return no plan and say why.
#include <gtest/gtest.h>

#include <algorithm>

#include <cmath>

#include "gpucal/model/catalog.hpp"
#include "gpucal/model/errors.hpp"
#include "gpucal/model/planner.hpp"

namespace gm = gpucal::model;

namespace {

struct planned {
  gm::model_spec m;
  gm::workload w;
  gm::plan_options opt;
  gm::coefficients c = gm::default_coefficients();
  gm::plan_result r;
};

planned run(const char* model, gm::workload w, gm::plan_options opt = {}) {
  planned p;
  p.m = gm::resolve_model(model);
  p.w = w;
  p.opt = std::move(opt);
  p.r = gm::plan_deployment(p.m, p.w, p.opt, p.c);
  return p;
}

// Rebuilds a plan's replica from scratch and checks it against the workload.
void check_plan(const planned& p, const gm::plan& plan) {
  SCOPED_TRACE(plan.gpu + " tp=" + std::to_string(plan.tp) + " " + plan.quantization + " kv " + plan.kv_cache_dtype);
  const auto& s = plan.state;
  const double per_replica = p.w.qps / plan.replicas;
  EXPECT_EQ(plan.total_gpus, plan.replicas * plan.tp);
  EXPECT_LE(plan.total_gpus, p.opt.max_gpus);
  EXPECT_DOUBLE_EQ(s.arrival_qps, per_replica);
  EXPECT_TRUE(s.converged);
  EXPECT_TRUE(s.failure.empty()) << s.failure;
  // Little's law at the fixed point.
  const double in_system = per_replica * (s.ttft_mean_s + p.w.output_len * s.tpot_mean_s);
  EXPECT_NEAR(s.concurrency, in_system, 1e-3 * in_system + 1e-6);
  EXPECT_LT(s.prefill_share, 1.0);
  EXPECT_NEAR(s.tpot_mean_s, s.decode_step_s / (1 - s.prefill_share), 1e-12);
  EXPECT_LE(s.kv_needed_bytes, s.kv_pool_bytes);
  EXPECT_LE(s.ttft_p99_s, p.w.ttft_p99_s);
  EXPECT_LE(s.tpot_p99_s, p.w.tpot_p99_s);
  EXPECT_GE(s.ttft_p99_s, s.ttft_mean_s);
  EXPECT_GE(s.tpot_p99_s, s.tpot_mean_s);  // never a p99 below its mean
  EXPECT_GE(s.itl_p99_s, s.itl_mean_s);
  EXPECT_DOUBLE_EQ(s.itl_mean_s, s.tpot_mean_s);
  EXPECT_NEAR(s.output_tokens_per_s, per_replica * p.w.output_len, 1e-9);

  // Independently re-solve the same replica; one replica fewer must fail.
  const gm::engine_profile engine = gm::resolve_engine(p.opt.engine);
  gm::estimate_options eo;
  eo.tp = plan.tp;
  eo.quantization = plan.quantization;
  eo.kv_cache_dtype = plan.kv_cache_dtype;
  eo.max_model_len = static_cast<std::int64_t>(std::ceil(p.w.prompt_len + p.w.output_len));
  const gm::gpu_spec& gpu = gm::resolve_gpu(plan.gpu_slug);
  const gm::memory_estimate mem = gm::estimate_memory(p.m, gpu, engine, p.c, eo);
  ASSERT_TRUE(mem.fits);
  EXPECT_EQ(mem.kv_pool_bytes, s.kv_pool_bytes);
  const gm::throughput_model perf(p.m, gpu, mem.settings, p.c.throughput, engine);
  EXPECT_DOUBLE_EQ(gm::solve_replica(perf, mem, p.w, per_replica).ttft_p99_s, s.ttft_p99_s);
  if (plan.replicas > 1) {
    EXPECT_FALSE(gm::solve_replica(perf, mem, p.w, p.w.qps / (plan.replicas - 1)).failure.empty());
  }
}

// One H100 with fp8 weights and KV: the search the verification tests plan over.
gm::plan_options h100_fp8() {
  gm::plan_options opt;
  opt.gpus = {"h100-sxm"};
  opt.quantizations = {"fp8"};
  opt.kv_cache_dtypes = {"fp8"};
  return opt;
}

// Re-checks the best plan with `requests` simulated requests (strict: dropping it on a miss).
void verify_best(planned& p, std::int64_t requests, bool strict = false) {
  gm::verify_options v;
  v.top = 1;
  v.requests = requests;
  v.strict = strict;
  gm::verify_plans(p.m, p.w, p.opt, p.c, p.r, v);
}

void check_all(const planned& p) {
  ASSERT_FALSE(p.r.plans.empty());
  for (const auto& plan : p.r.plans) check_plan(p, plan);
  for (std::size_t i = 1; i < p.r.plans.size(); ++i) {
    const auto &a = p.r.plans[i - 1], &b = p.r.plans[i];
    if (p.r.ranked_by_cost) EXPECT_LE(*a.cost_per_hour, *b.cost_per_hour);
    else EXPECT_LE(a.total_gpus, b.total_gpus);
  }
}

// The seed's section 7.1: Llama-3-70B, 50 req/s, 1000 in / 500 out, TTFT p99 2 s, TPOT p99 100 ms.
TEST(planner, seed_case_plans_satisfy_their_constraints) {
  gm::plan_options opt;
  opt.gpus = {"h100-sxm", "a100-80gb", "h200"};
  const planned p = run("llama-3-70b", {50, 1000, 500, 2.0, 0.1}, opt);
  check_all(p);
  // Prefill alone is 50 x 2 x 70.6e9 x 1000 FLOPs/s = 7.1 PFLOP/s: far more than the seed's 4 GPUs deliver.
  EXPECT_GT(p.r.plans.front().total_gpus, 4);
}

TEST(planner, other_workloads_plans_satisfy_their_constraints) {
  gm::plan_options small;
  small.gpus = {"l4", "a10g", "l40s", "h100-sxm"};
  check_all(run("llama-3-8b", {10, 512, 256, 1.0, 0.05}, small));
  gm::plan_options mid;
  mid.gpus = {"a100-80gb", "h100-sxm"};
  check_all(run("qwen2.5-7b", {100, 2000, 200, 3.0, 0.08}, mid));
  gm::plan_options moe;
  moe.gpus = {"h100-sxm", "h200"};
  moe.quantizations = {"none", "fp8"};
  check_all(run("mixtral-8x7b", {5, 1000, 1000, 2.0, 0.1}, moe));
}

TEST(planner, quantization_choices_respect_the_gpu) {
  gm::plan_options opt;
  opt.gpus = {"a100-80gb"};
  const planned p = run("llama-3-8b", {5, 512, 256, 1.0, 0.1}, opt);
  for (const auto& plan : p.r.plans) {
    EXPECT_NE(plan.quantization, "fp8");  // Ampere has no fp8 tensor cores
    EXPECT_NE(plan.kv_cache_dtype, "fp8");
  }
}

TEST(planner, prices_break_ties_between_equal_gpu_counts) {
  gm::plan_options opt;
  opt.gpus = {"h100-sxm", "h200"};
  opt.quantizations = {"none"};
  opt.kv_cache_dtypes = {"auto"};
  opt.price_per_gpu_hour = {{"h100-sxm-80gb", 2.0}, {"h200-sxm-141gb", 9.0}};
  const planned p = run("llama-3-8b", {2, 512, 256, 2.0, 0.1}, opt);
  ASSERT_GE(p.r.plans.size(), 2u);
  EXPECT_EQ(p.r.plans.front().gpu_slug, "h100-sxm-80gb");
  ASSERT_TRUE(p.r.plans.front().cost_per_hour.has_value());
  EXPECT_DOUBLE_EQ(*p.r.plans.front().cost_per_hour, 2.0 * p.r.plans.front().total_gpus);
}

TEST(planner, default_prices_rank_by_cost_when_every_gpu_has_one) {
  // Every default price names its list and date.
  for (const auto& price : gm::list_gpu_prices()) {
    EXPECT_GT(price.usd_per_gpu_hour, 0) << price.gpu_slug;
    EXPECT_FALSE(price.source.empty()) << price.gpu_slug;
    EXPECT_EQ(price.date.size(), 10u) << price.gpu_slug;  // YYYY-MM-DD
  }
  gm::plan_options opt;
  opt.gpus = {"h100-sxm", "h200", "b200"};
  const planned p = run("llama-3.1-70b", {5, 2000, 300, 2.0, 0.05}, opt);
  EXPECT_TRUE(p.r.ranked_by_cost);
  ASSERT_EQ(p.r.prices.size(), 3u);
  check_all(p);
  for (const auto& plan : p.r.plans)
    EXPECT_DOUBLE_EQ(*plan.cost_per_hour, gm::find_gpu_price(plan.gpu_slug)->usd_per_gpu_hour * plan.total_gpus);
  // The cheapest plan costs no more than the plan with the fewest GPUs.
  const auto fewest = std::min_element(p.r.plans.begin(), p.r.plans.end(),
                                       [](const gm::plan& a, const gm::plan& b) { return a.total_gpus < b.total_gpus; });
  EXPECT_LE(*p.r.plans.front().cost_per_hour, *fewest->cost_per_hour);
  // One GPU without a price (H20 has no public list price): ranked by GPU count, and it is named.
  gm::plan_options h20 = opt;
  h20.gpus.push_back("h20");
  const planned q = run("llama-3.1-70b", {5, 2000, 300, 2.0, 0.05}, h20);
  EXPECT_FALSE(q.r.ranked_by_cost);
  ASSERT_EQ(q.r.unpriced.size(), 1u);
  EXPECT_EQ(q.r.unpriced.front(), "H20");
  // --gpu-prices for it restores the ranking by cost, and overrides a default.
  h20.price_per_gpu_hour = {{"h20-sxm-96gb", 1.5}, {"h100-sxm-80gb", 2.0}};
  const planned priced = run("llama-3.1-70b", {5, 2000, 300, 2.0, 0.05}, h20);
  EXPECT_TRUE(priced.r.ranked_by_cost);
  for (const auto& u : priced.r.prices)
    if (u.gpu_slug == "h100-sxm-80gb") {
      EXPECT_EQ(u.source, "--gpu-prices");
    }
}

TEST(planner, model_larger_than_any_node_gets_no_plan) {
  // Llama-3.1-405B in 16 bits is 811 GB: more than 8 x 80 GB, and --max-gpus 8 allows no pipeline stages.
  gm::plan_options opt;
  opt.gpus = {"h100-sxm", "a100-80gb"};
  opt.quantizations = {"none"};
  opt.kv_cache_dtypes = {"auto"};
  opt.max_gpus = 8;
  const planned p = run("llama-3.1-405b", {1, 1000, 100, 5.0, 0.2}, opt);
  EXPECT_TRUE(p.r.plans.empty());
  ASSERT_EQ(p.r.rejected.size(), 2u);
  for (const auto& r : p.r.rejected) {
    EXPECT_EQ(r.kind, "memory") << r.reason;
    EXPECT_EQ(r.by_tp.size(), 4u);
    EXPECT_NE(r.reason.find("exceed the budget"), std::string::npos) << r.reason;
  }
}

TEST(planner, pipeline_stages_carry_a_model_no_node_holds) {
  // The same model with 16 GPUs allowed: tp 8 x pp 2, each stage holding 63 of the 126 layers.
  gm::plan_options opt;
  opt.gpus = {"h100-sxm"};
  opt.quantizations = {"none"};
  opt.kv_cache_dtypes = {"auto"};
  opt.max_gpus = 16;
  const planned p = run("llama-3.1-405b", {0.5, 1000, 100, 10.0, 0.5}, opt);
  ASSERT_FALSE(p.r.plans.empty());
  EXPECT_EQ(p.r.plans.front().tp, 8);
  EXPECT_EQ(p.r.plans.front().pp, 2);
  EXPECT_EQ(p.r.plans.front().total_gpus, 16);
  // Smaller models never get pipeline stages: some tp <= 8 holds them.
  const planned small = run("llama-3-70b", {1, 1000, 100, 5.0, 0.2}, {});
  for (const auto& plan : small.r.plans) EXPECT_EQ(plan.pp, 1);
}

TEST(planner, targets_below_the_bandwidth_floor_get_no_plan) {
  gm::plan_options opt;
  opt.gpus = {"h100-sxm"};
  const planned p = run("llama-3-8b", {1, 100, 100, 1.0, 0.001}, opt);  // TPOT 1 ms
  EXPECT_TRUE(p.r.plans.empty());
  ASSERT_FALSE(p.r.rejected.empty());
  for (const auto& r : p.r.rejected) {
    EXPECT_EQ(r.kind, "tpot");
    EXPECT_NE(r.reason.find("floor"), std::string::npos) << r.reason;
  }
}

TEST(planner, bad_workloads_are_input_errors) {
  const auto m = gm::resolve_model("llama-3-8b");
  const auto c = gm::default_coefficients();
  const auto expect_error = [&](gm::workload w, gm::plan_options o, const char* flag) {
    try {
      gm::plan_deployment(m, w, o, c);
      ADD_FAILURE() << "no error for " << flag;
    } catch (const gpucal::input_error& e) {
      EXPECT_NE(std::string(e.what()).find(flag), std::string::npos) << e.what();
    }
  };
  expect_error({0, 100, 100, 1, 0.1}, {}, "--qps");
  expect_error({1, -5, 100, 1, 0.1}, {}, "--prompt-len");
  expect_error({1, 100, 0, 1, 0.1}, {}, "--output-len");
  expect_error({1, 100, 100, 0, 0.1}, {}, "--ttft-p99");
  expect_error({1, 100, 100, 1, -1}, {}, "--tpot-p99");
  expect_error({1, 8000, 1000, 1, 0.1}, {}, "--prompt-len + --output-len");  // 9000 > 8192
  gm::plan_options bad_q;
  bad_q.quantizations = {"fp4"};
  expect_error({1, 100, 100, 1, 0.1}, bad_q, "--quantization");
  gm::plan_options bad_max;
  bad_max.max_gpus = 0;
  expect_error({1, 100, 100, 1, 0.1}, bad_max, "--max-gpus");
  gm::plan_options bad_gpu;
  bad_gpu.gpus = {"h1000"};
  expect_error({1, 100, 100, 1, 0.1}, bad_gpu, "--gpu");
}

TEST(planner, verify_agrees_with_the_simulator_below_a_third_of_the_gpu_in_prefill) {
  // Llama-3.1-8B, 2000 prompt + 200 output tokens at 10 req/s on H100 with fp8
  // weights and KV: one replica, prefill about 29 % of the GPU's time. The
  // simulated p99s (20,000 requests, vLLM V1's policy) within 10 % of the rules.
  gm::plan_options opt = h100_fp8();
  auto p = run("llama-3.1-8b", {10, 2000, 200, 1.0, 0.03, 0}, opt);
  ASSERT_FALSE(p.r.plans.empty());
  verify_best(p, 20000);
  const auto& plan = p.r.plans.front();
  ASSERT_TRUE(plan.verified);
  EXPECT_EQ(plan.replicas, 1);
  const auto& sim = plan.verified->sim;
  EXPECT_NEAR(sim.ttft_s.p99 / plan.state.ttft_p99_s, 1.0, 0.10);
  EXPECT_NEAR(sim.tpot_s.p99 / plan.state.tpot_p99_s, 1.0, 0.10);
  EXPECT_NEAR(sim.itl_s.p99 / plan.state.itl_p99_s, 1.0, 0.10);
  EXPECT_NEAR(sim.tpot_s.mean / plan.state.tpot_mean_s, 1.0, 0.03);
  EXPECT_NEAR(sim.mean_in_system / plan.state.concurrency, 1.0, 0.05);
  EXPECT_TRUE(plan.verified->misses.empty());
}

TEST(planner, verify_strict_drops_a_plan_that_misses) {
  gm::plan_options opt = h100_fp8();
  auto p = run("llama-3.1-8b", {10, 2000, 200, 1.0, 0.03, 0}, opt);
  ASSERT_FALSE(p.r.plans.empty());
  const std::size_t before = p.r.plans.size();
  // A TTFT target just below the simulated p99 of the best plan: strict drops it.
  verify_best(p, 4000);
  const double sim_ttft = p.r.plans.front().verified->sim.ttft_s.p99;
  p.w.ttft_p99_s = sim_ttft * 0.999;
  auto again = run("llama-3.1-8b", p.w, opt);
  verify_best(again, 4000, true);
  EXPECT_GE(again.r.dropped_by_verify, 1);
  EXPECT_LT(again.r.plans.size() + static_cast<std::size_t>(again.r.dropped_by_verify), before + 1);
  for (const auto& plan : again.r.plans) {
    if (plan.verified) {
      EXPECT_TRUE(plan.verified->misses.empty());
    }
  }
}

TEST(planner, disaggregated_plans_re_solved) {
  gm::plan_options opt = h100_fp8();
  opt.aggregated = true;
  opt.disaggregated = true;
  const gm::workload w{5, 4000, 300, 1.0, 0.03, 0};
  const planned p = run("llama-3.1-70b", w, opt);
  const gm::plan* agg = nullptr;
  const gm::plan* dis = nullptr;
  for (const auto& x : p.r.plans) {
    if (x.mode == "agg" && !agg) agg = &x;
    if (x.mode == "disagg" && !dis) dis = &x;
  }
  ASSERT_NE(agg, nullptr);
  ASSERT_NE(dis, nullptr);
  ASSERT_TRUE(dis->disagg);
  const auto& d = *dis->disagg;
  EXPECT_EQ(dis->total_gpus, d.prefill_replicas * d.prefill_tp + d.decode_replicas * d.decode_tp);
  const gm::engine_profile engine = gm::resolve_engine("vllm");
  const gm::gpu_spec& gpu = gm::resolve_gpu("h100-sxm");
  const auto pool = [&](int tp) {
    gm::estimate_options eo;
    eo.tp = tp;
    eo.quantization = "fp8";
    eo.kv_cache_dtype = "fp8";
    eo.max_model_len = 4300;
    return gm::estimate_memory(p.m, gpu, engine, p.c, eo);
  };
  // Prefill pool: an M/D/1 queue of prompts. Its p99 wait, re-solved here by Newton's
  // method on rho (e^x - 1) = x (x = theta s), must fit the TTFT target with the
  // prefill, the KV transfer and the first decode step; one replica fewer must not.
  const auto pm = pool(d.prefill_tp);
  const gm::throughput_model pp(p.m, gpu, pm.settings, p.c.throughput, engine);
  const double s = pp.prefill(4000).total_s;
  EXPECT_DOUBLE_EQ(d.prefill_s, s);
  const auto wait99 = [&](double rho) {
    if (rho <= 0.01) return 0.0;
    double x = 2 * (1 - rho) / rho + 1;  // start right of the root
    for (int i = 0; i < 100; ++i) x -= (rho * (std::exp(x) - 1) - x) / (rho * std::exp(x) - 1);
    return s * std::log(rho / 0.01) / x;
  };
  const auto dm = pool(d.decode_tp);
  const gm::throughput_model dp(p.m, gpu, dm.settings, p.c.throughput, engine);
  // The KV moves at NVLink speed (H100 SXM: 450 GB/s per direction) in one NVLink domain.
  const double kv = std::max(static_cast<double>(pm.kv.bytes_per_token), static_cast<double>(dm.kv.bytes_per_token)) * 4000;
  EXPECT_NEAR(d.kv_transfer_s, kv / 450e9, 1e-12);
  const auto ttft = [&](int replicas) {
    const double rho = w.qps / replicas * s;
    return rho >= 1 ? INFINITY : wait99(rho) + s + d.kv_transfer_s + d.decode.decode_step_s;
  };
  EXPECT_NEAR(dis->state.ttft_p99_s, ttft(d.prefill_replicas), 1e-6 * dis->state.ttft_p99_s);
  EXPECT_LE(dis->state.ttft_p99_s, w.ttft_p99_s);
  if (d.prefill_replicas > 1) {
    EXPECT_GT(ttft(d.prefill_replicas - 1), w.ttft_p99_s);
  }
  // Decode pool: Little's law with no prompt chunks, C = qps / replicas x O x step(C).
  const double lambda = w.qps / d.decode_replicas, c = d.decode.concurrency;
  EXPECT_NEAR(c, lambda * w.output_len * dp.decode_step(c, 4000 + 150).total_s, 1e-3 * c);
  EXPECT_DOUBLE_EQ(d.decode.tpot_mean_s, dp.decode_step(c, 4150).total_s);
  EXPECT_LE(d.decode.tpot_p99_s, w.tpot_p99_s);
  EXPECT_GE(d.decode.tpot_p99_s, d.decode.tpot_mean_s);
  EXPECT_LE(d.decode.kv_needed_bytes, dm.kv_pool_bytes);
  // Without prompt chunks in its steps, the decode pool's ITL p99 is a plain decode step.
  EXPECT_LT(d.decode.itl_p99_s, agg->state.itl_p99_s);
}

TEST(planner, disaggregated_decode_replica_must_hold_one_prompt) {
  // Llama-3.1-8B in 16 bits on one L4: 16 GB of weights leave 4.5 GiB of KV, and a
  // 120,000-token prompt needs 14.7 GiB: no decode replica can take it.
  gm::plan_options opt;
  opt.gpus = {"l4"};
  opt.max_gpus = 1;
  opt.quantizations = {"none"};
  opt.kv_cache_dtypes = {"auto"};
  opt.aggregated = false;
  opt.disaggregated = true;
  const planned p = run("llama-3.1-8b", {1, 120000, 100, 60, 0.2, 0}, opt);
  EXPECT_TRUE(p.r.plans.empty());
  ASSERT_EQ(p.r.rejected.size(), 1u);
  EXPECT_EQ(p.r.rejected.front().kind, "memory");
  EXPECT_NE(p.r.rejected.front().reason.find("cannot hold one prompt's KV"), std::string::npos) << p.r.rejected.front().reason;
}

TEST(planner, long_outputs_and_long_prompts_keep_sane_tails) {
  // 4,000 output tokens: a request's steps carry hundreds of prompt chunks in all;
  // their p99 count must come from the distribution, not an underflowed loop.
  const auto m = gm::resolve_model("llama-3.1-8b");
  const gm::engine_profile engine = gm::resolve_engine("vllm");
  const gm::gpu_spec& gpu = gm::resolve_gpu("h100-sxm");
  const auto c = gm::default_coefficients();
  gm::estimate_options eo;
  eo.max_model_len = 1000 + 4000;
  eo.kv_cache_dtype = "fp8";
  const auto mem = gm::estimate_memory(m, gpu, engine, c, eo);
  const gm::throughput_model perf(m, gpu, mem.settings, c.throughput, engine);
  // 1 req/s x 4,000 tokens: 4,000 tokens/s, well below what the fp8 KV reads of 3,000-token contexts allow.
  const gm::workload w{1, 1000, 4000, 10, 1, 0};
  const auto r = gm::solve_replica(perf, mem, w, 1);
  ASSERT_TRUE(r.failure.empty()) << r.failure;
  EXPECT_GE(r.tpot_p99_s, r.tpot_mean_s);
  EXPECT_LT(r.tpot_p99_s, 1.5 * r.tpot_mean_s);
  // About one prompt arrives per second of a request's life (3,999 steps at the mean TPOT).
  const double mean_chunks = 1.0 * 3999 * r.tpot_mean_s;
  EXPECT_GT(r.chunks_per_request_p99, mean_chunks);
  EXPECT_LT(r.chunks_per_request_p99, 3 * mean_chunks);
  // A prompt one token over the step budget: one full chunk and a one-token chunk, their mean.
  eo.max_model_len = 8193 + 100;
  const auto mem2 = gm::estimate_memory(m, gpu, engine, c, eo);
  const gm::throughput_model perf2(m, gpu, mem2.settings, c.throughput, engine);
  ASSERT_EQ(mem2.settings.max_num_batched_tokens, 8192);
  const auto r2 = gm::solve_replica(perf2, mem2, {1, 8193, 100, 10, 1, 0}, 1);
  const auto chunk_of = [&](double tokens) { return perf2.prefill(tokens).total_s - perf2.step_overhead_s(); };
  EXPECT_NEAR(r2.prefill_chunk_s, (chunk_of(8192) + chunk_of(1)) / 2, 1e-12);
}

TEST(planner, verify_takes_fractional_mean_lengths) {
  gm::plan_options opt = h100_fp8();
  auto p = run("llama-3.1-8b", {5, 1000.5, 200.5, 1.0, 0.05, 0}, opt);
  ASSERT_FALSE(p.r.plans.empty());
  verify_best(p, 500);
  ASSERT_TRUE(p.r.plans.front().verified);
  EXPECT_EQ(p.r.plans.front().verified->sim.requests, 500);
}

}  // namespace
