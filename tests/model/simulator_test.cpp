// gpucal simulate: hand-worked traces (one request; two contending for the
// KV pool; a preemption), Little's law on a long run, the trace reader and
// the length distributions.
#include "gpucal/model/simulator.hpp"
#include "gpucal/model/step_policy.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "gpucal/model/catalog.hpp"
#include "gpucal/model/errors.hpp"
#include "test_support.hpp"

namespace gm = gpucal::model;

namespace {

// Llama-3.1-8B on one H100 under vLLM 0.33: one full-attention group of 16-token blocks.
struct deployment {
  gm::model_spec m = gm::resolve_model("llama-3.1-8b");
  gm::gpu_spec gpu = gm::resolve_gpu("h100-sxm");
  gm::engine_profile engine = gm::resolve_engine("vllm@0.33");
  gm::coefficients c = gm::default_coefficients();
  gm::memory_estimate mem;
  std::optional<gm::throughput_model> perf;
  explicit deployment(std::int64_t max_model_len = 4096) {
    gm::estimate_options o;
    o.max_model_len = max_model_len;
    mem = gm::estimate_memory(m, gpu, engine, c, o);
    perf.emplace(m, gpu, mem.settings, c.throughput, engine);
  }
  double prefill(double tokens) const { return perf->prefill(tokens).total_s; }
  double decode(double batch, double context) const { return perf->decode_step(batch, context).total_s; }
};

gm::sim_result run(const deployment& d, const gm::memory_estimate& mem, std::vector<gm::sim_request> reqs) {
  gm::sim_options o;
  o.requests = std::move(reqs);
  return gm::simulate(*d.perf, mem, o);
}

TEST(simulator, one_request_by_hand) {
  const deployment d;
  ASSERT_EQ(d.mem.kv.block_size, 16);
  // 100 prompt tokens, 3 output tokens, arriving at t = 2 s: one prefill step
  // (it samples the first token), then two decode steps at batch 1 over
  // contexts of 101 and 102 tokens.
  const auto r = run(d, d.mem, {{2.0, 100, 3}});
  const double ttft = d.prefill(100);
  const double d1 = d.decode(1, 101), d2 = d.decode(1, 102);
  EXPECT_EQ(r.requests, 1);
  EXPECT_EQ(r.steps, 3);
  EXPECT_EQ(r.preemptions, 0);
  // Prompt chunks above 64 tokens are timed on a grid 1/32 of a doubling apart and
  // decode steps on a context grid 1/16 of a doubling apart: within 0.5 %.
  EXPECT_NEAR(r.ttft_s.p50 / ttft, 1.0, 0.005);
  EXPECT_NEAR(r.e2e_s.p50 / (ttft + d1 + d2), 1.0, 0.005);
  EXPECT_NEAR(r.tpot_s.p50 / ((d1 + d2) / 2), 1.0, 0.005);
  EXPECT_EQ(r.itl_s.samples, 2);
  EXPECT_NEAR(r.itl_s.mean, r.tpot_s.mean, 1e-12);  // one request: mean ITL = its TPOT
  EXPECT_NEAR(r.duration_s, r.e2e_s.p50, 1e-12);
  EXPECT_NEAR(r.output_tokens_per_s, 3 / r.duration_s, 1e-9);
}

TEST(simulator, two_requests_contend_for_the_kv_pool) {
  const deployment d;
  gm::memory_estimate small = d.mem;
  small.num_blocks = 8;
  // A (64 + 64 tokens) takes 4 blocks at its prefill and 8 at its last decode
  // (127 tokens); B (80 + 1) needs 5 blocks: 4 + 5 > 8 at step 1 and A holds 5
  // or more from its second decode on, so B waits until A finishes (step 64),
  // then its prefill (step 65) gives its only token.
  const auto r = run(d, small, {{0.0, 64, 64}, {0.0, 80, 1}});
  EXPECT_EQ(r.steps, 65);
  EXPECT_EQ(r.preemptions, 0);
  EXPECT_EQ(r.requests, 2);
  double a_e2e = d.prefill(64);
  for (int k = 1; k <= 63; ++k) a_e2e += d.decode(1, 64 + k);
  const double b_ttft = a_e2e + d.prefill(80);
  EXPECT_NEAR(r.e2e_s.max / b_ttft, 1.0, 0.005);  // B is the later of the two
  EXPECT_NEAR(r.ttft_s.max / b_ttft, 1.0, 0.005);
  EXPECT_NEAR(r.ttft_s.mean, (d.prefill(64) + r.ttft_s.max) / 2, 1e-9);
  EXPECT_EQ(r.tpot_s.samples, 1);  // B's single token has no TPOT
  EXPECT_DOUBLE_EQ(r.max_kv_used_fraction, 1.0);  // A's 8 blocks at its last decode
}

TEST(simulator, a_preemption_by_hand) {
  const deployment d;
  gm::memory_estimate small = d.mem;
  small.num_blocks = 10;
  // A: 64 + 64 tokens, B: 32 + 64 tokens, both at t = 0, blocks of 16 tokens.
  // Step 1 prefills both (4 + 2 blocks). After k decode steps A holds 64 + k
  // tokens and B 32 + k. At step 34 A appends its 97th token: ceil(97/16) = 7
  // blocks + B's ceil(64/16) = 4 = 11 > 10, so B, the latest admitted, is
  // preempted, having generated 33 tokens. It cannot come back (its re-prefill
  // of 32 + 33 = 65 tokens needs 5 blocks; A holds 7 or 8) until A finishes at
  // step 64; step 65 re-prefills B's 65 tokens and samples its 34th token, and
  // its last 30 come from steps 66 to 95.
  const auto r = run(d, small, {{0.0, 64, 64}, {0.0, 32, 64}});
  EXPECT_EQ(r.preemptions, 1);
  EXPECT_EQ(r.requests, 2);
  EXPECT_EQ(r.steps, 95);
  EXPECT_EQ(r.ttft_s.samples, 2);
  EXPECT_EQ(r.itl_s.samples, 63 + 63);  // every token seen once: vLLM keeps the generated ones
  EXPECT_NEAR(r.output_tokens_per_s * r.duration_s, 128, 1e-6);
  // B's longest gap between tokens: A's decodes alone at steps 34 to 64 (contexts
  // 97 to 127) and B's re-prefill at step 65.
  double stall = d.prefill(65);
  for (int s = 34; s <= 64; ++s) stall += d.decode(1, 63 + s);
  EXPECT_NEAR(r.itl_s.max / stall, 1.0, 0.005);
  gm::sim_options drop;
  drop.requests = {{0.0, 64, 64}, {0.0, 32, 64}};
  drop.preemption = gm::preemption_mode::drop_generated;
  const auto again = gm::simulate(*d.perf, small, drop);
  EXPECT_EQ(again.requests, 2);
  EXPECT_EQ(again.itl_s.samples, 63 + 63);  // regenerated tokens are not shown twice
  EXPECT_GT(again.steps, r.steps);          // regenerating 33 tokens one step at a time costs steps
}

TEST(simulator, littles_law_holds_on_a_long_run) {
  const deployment d(16384);
  const auto reqs = gm::poisson_requests(8, gm::parse_length_dist("lognormal:600:0.6", "--prompt-len"),
                                         gm::parse_length_dist("uniform:50:300", "--output-len"), 20000, 7);
  const auto r = run(d, d.mem, reqs);
  EXPECT_EQ(r.requests, 20000);
  // Over the whole run (first arrival to last finish) L = lambda x W holds exactly.
  EXPECT_NEAR(r.mean_in_system / (r.requests_per_s * r.e2e_s.mean), 1.0, 1e-6);
  // Arrivals at 8 req/s over 20,000 requests: the measured rate within 2 %.
  EXPECT_NEAR(r.requests_per_s / 8, 1.0, 0.02);
  EXPECT_LE(r.ttft_s.p50, r.ttft_s.p90);
  EXPECT_LE(r.ttft_s.p90, r.ttft_s.p99);
  EXPECT_LE(r.tpot_s.p50, r.tpot_s.p99);
  EXPECT_GE(r.timeline.size(), 100u);
  EXPECT_LE(r.timeline.size(), 500u);
  for (std::size_t i = 1; i < r.timeline.size(); ++i) EXPECT_GT(r.timeline[i].time_s, r.timeline[i - 1].time_s);
  EXPECT_GT(r.timeline.back().time_s, 0.9 * r.duration_s);
}

TEST(simulator, poisson_arrivals_and_lengths) {
  const auto reqs = gm::poisson_requests(4, gm::parse_length_dist("uniform:10:20", "--prompt-len"),
                                         gm::parse_length_dist("lognormal:100:0.5", "--output-len"), 50000, 3);
  double gaps = 0, last = 0, prompt = 0;
  std::vector<double> out;
  for (const auto& q : reqs) {
    gaps += q.arrival_s - last;
    last = q.arrival_s;
    EXPECT_GE(q.prompt_tokens, 10);
    EXPECT_LE(q.prompt_tokens, 20);
    prompt += static_cast<double>(q.prompt_tokens);
    out.push_back(static_cast<double>(q.output_tokens));
  }
  EXPECT_NEAR(gaps / 50000, 0.25, 0.25 * 0.02);  // mean gap 1 / qps
  EXPECT_NEAR(prompt / 50000, 15, 0.1);
  std::nth_element(out.begin(), out.begin() + 25000, out.end());
  EXPECT_NEAR(out[25000], 100, 2);  // the lognormal's median
  // Same seed, same requests.
  const auto again = gm::poisson_requests(4, gm::parse_length_dist("uniform:10:20", "--prompt-len"),
                                          gm::parse_length_dist("lognormal:100:0.5", "--output-len"), 50000, 3);
  EXPECT_EQ(again.back().output_tokens, reqs.back().output_tokens);
  EXPECT_DOUBLE_EQ(again.back().arrival_s, reqs.back().arrival_s);
}

TEST(simulator, bad_lengths_and_traces_name_the_flag_or_line) {
  for (const char* bad : {"0", "-5", "1.5", "abc", "uniform:5", "uniform:9:3", "lognormal:100:0", "normal:1:2", "nan"}) {
    SCOPED_TRACE(bad);
    expect_input_error([&] { gm::parse_length_dist(bad, "--prompt-len"); }, {"--prompt-len"});
  }
  const auto trace = gm::parse_trace("{\"arrival_s\": 1.5, \"prompt_tokens\": 10, \"output_tokens\": 5}\n\n"
                                     "{\"timestamp\": 0.5, \"input_length\": 20, \"output_length\": 2}\n",
                                     "t.jsonl");
  ASSERT_EQ(trace.size(), 2u);
  EXPECT_EQ(trace[1].prompt_tokens, 20);
  for (const auto& [text, needle] : std::vector<std::pair<std::string, std::string>>{
           {"{\"arrival_s\": 1, \"prompt_tokens\": 10, \"output_tokens\": 5}\nnot json\n", "line 2"},
           {"{\"arrival_s\": 1, \"prompt_tokens\": 10}\n", "line 1: field 'output_tokens' is missing"},
           {"{\"arrival_s\": -1, \"prompt_tokens\": 10, \"output_tokens\": 5}\n", "arrival_s"},
           {"{\"arrival_s\": 1, \"prompt_tokens\": 0, \"output_tokens\": 5}\n", "prompt_tokens"},
           {"{\"arrival_s\": 1, \"prompt_tokens\": 2.5, \"output_tokens\": 5}\n", "prompt_tokens"},
           {"[1, 2, 3]\n", "line 1: not a JSON object"},
           {"\n\n", "holds no request"}}) {
    SCOPED_TRACE(text);
    expect_input_error([&text = text] { gm::parse_trace(text, "t.jsonl"); }, {needle.c_str(), "t.jsonl"});
  }
}

TEST(simulator, static_batch_sum_by_hand) {
  const deployment d;
  ASSERT_EQ(d.mem.settings.max_num_batched_tokens, 8192);
  // 10 prompts of 1000 tokens and 3 outputs: 8 whole prompts fit a step of 8192
  // tokens, so two prefill steps (8 and 2 prompts), then 2 decode steps at batch 10
  // over contexts 1001 and 1002.
  const auto b = gm::static_batch_estimate(*d.perf, d.mem, 10, 1000, 3);
  const double prefill = d.perf->prefill(1000, 8).total_s + d.perf->prefill(1000, 2).total_s;
  const double decode = d.decode(10, 1001) + d.decode(10, 1002);
  EXPECT_EQ(b.prefill_steps, 2);
  EXPECT_DOUBLE_EQ(b.prefill_s, prefill);
  EXPECT_DOUBLE_EQ(b.decode_s, decode);
  EXPECT_DOUBLE_EQ(b.e2e_s, prefill + decode);
  EXPECT_DOUBLE_EQ(b.output_tokens_per_s, 30 / (prefill + decode));
  // The simulator runs the same batch under the engine's policy: decode-first
  // steps let the first 8 requests decode while the last 2 prefill, so it may
  // finish a little earlier; within 5 % here.
  EXPECT_NEAR(b.simulated_e2e_s / b.e2e_s, 1.0, 0.05);
  EXPECT_EQ(b.simulated_preemptions, 0);
  // A prompt longer than the step budget goes in chunks: 20,000 tokens = 2 x 8192 + 3616.
  const deployment longer(32768);
  const auto c = gm::static_batch_estimate(*longer.perf, longer.mem, 2, 20000, 2);
  EXPECT_EQ(c.prefill_steps, 6);
  EXPECT_DOUBLE_EQ(c.prefill_s, 2 * (2 * longer.perf->prefill(8192).total_s + longer.perf->prefill(3616).total_s));
}

TEST(step_policy, complete_refuses_a_step_other_than_the_one_in_flight) {
  struct pool_of_counts final : gm::kv_pool {
    void add_sequence(std::int64_t) override {}
    bool append(std::int64_t, std::int64_t) override { return true; }
    void free_sequence(std::int64_t) override {}
    std::string never_fits(std::int64_t) const override { return ""; }
  } pool;
  gm::step_policy policy(pool, {4, 64, 1000}, gm::preemption_mode::keep_generated);
  policy.add(1, 10, 3);
  policy.add(2, 10, 3);
  const auto step = policy.schedule();
  ASSERT_EQ(step.chunks.size(), 2u);
  EXPECT_THROW(policy.complete(gm::policy_step{}), std::invalid_argument);  // an empty step while one is in flight
  gm::policy_step one = step;
  one.chunks.pop_back();
  EXPECT_THROW(policy.complete(one), std::invalid_argument);  // a part of it
  EXPECT_TRUE(policy.complete(step).empty());                 // the step itself
  EXPECT_EQ(policy.computed_tokens(1), 10);
  EXPECT_EQ(policy.generated_tokens(2), 1);
}

}  // namespace
