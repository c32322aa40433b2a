// The reference engine's side of the model on the CPU: the activation fit
// (exact, noisy, clamped and refused cases), the step-overhead fit worked by
// hand, the optional per-engine throughput.step_overhead_us coefficients and
// the throughput model picking them over the profile, and the gpucal engine
// profile itself. Every expected figure is computed here from the formula.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <random>

#include "gpucal/model/calibration.hpp"
#include "gpucal/model/catalog.hpp"
#include "gpucal/model/errors.hpp"
#include "gpucal/model/fit.hpp"
#include "gpucal/model/memory_model.hpp"
#include "gpucal/model/throughput_model.hpp"

namespace gm = gpucal::model;

namespace {

constexpr double mib = 1024.0 * 1024.0;

// Llama-3-8B (hidden 4096, intermediate 14336, vocab 128256, bf16) in the gpucal
// engine: the widest forward stage is the MLP, residual + normed (2 x 4096) plus
// gate|up and silu(gate) x up (3 x 14336) elements per token; the sampler keeps
// the hidden states and one bf16 [rows, vocab] logits tensor (no FP32 copy).
double llama3_8b_forward_bytes(double tokens) { return tokens * (2 * 4096 + 3 * 14336) * 2; }
double llama3_8b_sampler_bytes(double tokens, double rows) { return tokens * 4096 * 2 + std::min(rows, tokens) * 128256 * 2; }

// Passes at 256 .. 8192 tokens with 256 sampler rows: the sampler is the larger
// term up to 512 tokens, the forward beyond.
std::vector<gm::activation_point> llama3_8b_points(double scale, double fixed_bytes) {
  std::vector<gm::activation_point> pts;
  for (std::int64_t t : {256, 512, 1024, 2048, 4096, 8192}) {
    gm::activation_point p;
    p.tokens = t;
    p.rows = std::min<std::int64_t>(256, t);
    p.model_forward_bytes = llama3_8b_forward_bytes(static_cast<double>(t));
    p.model_sampler_bytes = llama3_8b_sampler_bytes(static_cast<double>(t), static_cast<double>(p.rows));
    p.measured_peak_bytes = scale * std::max(p.model_forward_bytes, p.model_sampler_bytes) + fixed_bytes;
    pts.push_back(p);
  }
  return pts;
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(fit_activation, recovers_exact_scale_and_fixed) {
  const auto pts = llama3_8b_points(1.3, 200 * mib);
  // The sampler term is the max at 256 and 512 tokens: 256 x 128256 x 2 = 65.7 MB
  // of logits against 26.2 MB and 52.4 MB of MLP activations.
  ASSERT_GT(pts[1].model_sampler_bytes, pts[1].model_forward_bytes);
  ASSERT_GT(pts[2].model_forward_bytes, pts[2].model_sampler_bytes);
  const gm::activation_fit f = gm::fit_activation(pts, "llama-3-8b");
  EXPECT_NEAR(f.scale.value, 1.3, 1e-9);
  EXPECT_NEAR(f.fixed_bytes.value, 200 * mib, 1e-9 * 200 * mib);
  EXPECT_EQ(f.scale.source, "measured");
  EXPECT_EQ(f.fixed_bytes.source, "measured");
  EXPECT_NE(f.scale.note.find("6 measured"), std::string::npos) << f.scale.note;
  EXPECT_NE(f.scale.note.find("256 to 8192 tokens"), std::string::npos) << f.scale.note;
  EXPECT_EQ(f.scale.note.find("clamped"), std::string::npos) << f.scale.note;
  EXPECT_EQ(f.result.name, "activation/llama-3-8b");
  EXPECT_EQ(f.result.points, 6);
  EXPECT_NEAR(f.result.params.at("scale"), 1.3, 1e-9);
  EXPECT_LT(f.result.residual_max_rel, 1e-12);
}

// +-0.5 % uniform noise on every measured peak, three passes per token count.
// The 1/measured weights make the fit relative, so scale lands within the noise
// (0.5 %) and fixed within 4 MiB (2 %): the small passes (about 0.3 GB, where
// fixed is two thirds of the peak) pin it to about 0.5 % of 0.3 GB = 1.5 MB each.
TEST(fit_activation, noisy_points_stay_within_tolerance) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> noise(-0.005, 0.005);
  std::vector<gm::activation_point> pts;
  for (int rep = 0; rep < 3; ++rep)
    for (auto p : llama3_8b_points(1.3, 200 * mib)) {
      p.measured_peak_bytes *= 1 + noise(rng);
      pts.push_back(p);
    }
  const gm::activation_fit f = gm::fit_activation(pts, "llama-3-8b");
  EXPECT_NEAR(f.scale.value, 1.3, 0.005 * 1.3);
  EXPECT_NEAR(f.fixed_bytes.value, 200 * mib, 4 * mib);
  EXPECT_LE(f.result.residual_max_rel, 0.01);  // the noise, plus what the fit moved
  EXPECT_GT(f.result.residual_rms_rel, 0);
  EXPECT_EQ(f.result.points, 18);
}

// Measured = 1.1 x model - 5 MiB: the free fit wants fixed < 0. Clamped to 0,
// scale is the weighted least squares through the origin, sum(x/y) / sum((x/y)^2).
TEST(fit_activation, negative_fixed_is_clamped_and_scale_refitted) {
  const auto pts = llama3_8b_points(1.1, -5 * mib);
  double sum_r = 0, sum_r2 = 0;
  for (const auto& p : pts) {
    const double r = std::max(p.model_forward_bytes, p.model_sampler_bytes) / p.measured_peak_bytes;
    sum_r += r;
    sum_r2 += r * r;
  }
  const gm::activation_fit f = gm::fit_activation(pts, "llama-3-8b");
  EXPECT_EQ(f.fixed_bytes.value, 0);
  EXPECT_NEAR(f.scale.value, sum_r / sum_r2, 1e-12);
  EXPECT_GT(f.scale.value, 1.0);
  EXPECT_LT(f.scale.value, 1.1);
  EXPECT_NE(f.fixed_bytes.note.find("clamped to 0"), std::string::npos) << f.fixed_bytes.note;
  EXPECT_NE(f.scale.note.find("clamped to 0"), std::string::npos) << f.scale.note;
  EXPECT_EQ(f.result.params.at("fixed_bytes"), 0);
}

TEST(fit_activation, too_few_distinct_points_are_refused) {
  const auto pts = llama3_8b_points(1.3, 200 * mib);
  EXPECT_THROW(gm::fit_activation({}, "x"), std::invalid_argument);
  EXPECT_THROW(gm::fit_activation({pts[3]}, "x"), std::invalid_argument);
  // Two passes with the same model peak determine one line through one x only.
  const std::string e = error_of([&] { gm::fit_activation({pts[3], pts[3]}, "llama-3-8b"); });
  EXPECT_NE(e.find("at least 2 points with distinct"), std::string::npos) << e;
  EXPECT_NE(e.find("llama-3-8b"), std::string::npos) << e;
  auto bad = pts;
  bad[0].measured_peak_bytes = 0;
  EXPECT_THROW(gm::fit_activation(bad, "x"), std::invalid_argument);
}

TEST(fit_activation, scale_outside_the_parser_range_is_an_error) {
  const std::string e = error_of([] { gm::fit_activation(llama3_8b_points(20, 0), "llama-3-8b"); });
  EXPECT_NE(e.find("activation_scale"), std::string::npos) << e;
  EXPECT_NE(e.find("20"), std::string::npos) << e;
  EXPECT_NE(e.find("[0.1, 10]"), std::string::npos) << e;
  EXPECT_THROW(gm::fit_activation(llama3_8b_points(20, 0), "x"), std::runtime_error);
}

// Gaps (measured - kernels): 300, 340, 370 us in decode, 350 us in prefill.
// Median of {300, 340, 350, 370} = (340 + 350) / 2 = 345 us.
TEST(fit_step_overhead, median_gap_and_residuals_by_hand) {
  const std::vector<gm::step_point> pts = {{"decode", 1, 1000, 1, 1000, 700},
                                           {"decode", 8, 1000, 8, 1100, 760},
                                           {"decode", 64, 1000, 64, 1200, 830},
                                           {"prefill", 1, 0, 4096, 5000, 4650}};
  const gm::step_overhead_fit f = gm::fit_step_overhead(pts, "gpucal");
  EXPECT_DOUBLE_EQ(f.overhead_us.value, 345);
  EXPECT_EQ(f.overhead_us.source, "measured");
  EXPECT_NE(f.overhead_us.note.find("4 steps (3 decode, 1 prefill)"), std::string::npos) << f.overhead_us.note;
  EXPECT_EQ(f.result.name, "step_overhead/gpucal");
  EXPECT_EQ(f.result.points, 4);
  // |kernels + 345 - measured| / measured: 45/1000, 5/1100, 25/1200, 5/5000.
  const double e[] = {45.0 / 1000, 5.0 / 1100, 25.0 / 1200, 5.0 / 5000};
  EXPECT_NEAR(f.result.residual_max_rel, 0.045, 1e-12);
  EXPECT_NEAR(f.result.residual_rms_rel, std::sqrt((e[0] * e[0] + e[1] * e[1] + e[2] * e[2] + e[3] * e[3]) / 4), 1e-12);
}

TEST(fit_step_overhead, negative_gap_clamps_and_bad_points_are_refused) {
  // Steps faster than the modelled kernels: median gap -50 us, overhead 0.
  const gm::step_overhead_fit f = gm::fit_step_overhead({{"decode", 1, 100, 1, 950, 1000}}, "gpucal");
  EXPECT_EQ(f.overhead_us.value, 0);
  EXPECT_NE(f.overhead_us.note.find("clamped to 0"), std::string::npos) << f.overhead_us.note;
  EXPECT_NEAR(f.result.residual_max_rel, 50.0 / 950, 1e-12);
  EXPECT_THROW(gm::fit_step_overhead({}, "gpucal"), std::invalid_argument);
  EXPECT_THROW(gm::fit_step_overhead({{"sample", 1, 0, 1, 100, 50}}, "gpucal"), std::invalid_argument);
  EXPECT_THROW(gm::fit_step_overhead({{"decode", 1, 0, 1, 0, 50}}, "gpucal"), std::invalid_argument);
  EXPECT_THROW(gm::fit_step_overhead({{"decode", 1, 0, 1, 3e6, 1}}, "gpucal"), std::runtime_error);
}

gm::calibration_file calibration_with(const gm::coefficients& c) {
  gm::calibration_file f;
  f.tool_version = "0.1.0";
  f.git_commit = "abc123";
  f.created_utc = "2026-11-24T21:00:00Z";
  f.device = {"NVIDIA H100 80GB HBM3", "h100-sxm-80gb", "9.0", 132, 85045477376, "580.159.04", "13.0", {}, {}};
  f.coeffs = c;
  return f;
}

TEST(step_overhead_coefficients, optional_round_trip_and_validation) {
  gm::coefficients c = gm::default_coefficients();
  EXPECT_TRUE(c.throughput.step_overhead_us.empty());
  // Absent stays absent: written only when non-empty.
  const auto plain = nlohmann::json::parse(gm::calibration_to_json(calibration_with(c)));
  EXPECT_FALSE(plain["coefficients"]["throughput"].contains("step_overhead_us"));
  EXPECT_TRUE(gm::parse_coefficients(plain.dump(), "x.json").throughput.step_overhead_us.empty());

  c.throughput.step_overhead_us["gpucal"] = {412, "measured", "median gap over 12 steps"};
  const std::string text = gm::calibration_to_json(calibration_with(c));
  const auto j = nlohmann::json::parse(text);
  EXPECT_EQ(j["coefficients"]["throughput"]["step_overhead_us"]["gpucal"]["value"], 412);
  const gm::coefficients back = gm::parse_coefficients(text, "x.json");
  ASSERT_EQ(back.throughput.step_overhead_us.size(), 1u);
  const gm::coefficient& o = back.throughput.step_overhead_us.at("gpucal");
  EXPECT_EQ(o.value, 412);
  EXPECT_EQ(o.source, "measured");
  EXPECT_EQ(o.note, "median gap over 12 steps");

  const auto bad = [&](const nlohmann::json& entry) {
    auto k = j;
    k["coefficients"]["throughput"]["step_overhead_us"]["gpucal"] = entry;
    return error_of([&] { gm::parse_coefficients(k.dump(), "bad.json"); });
  };
  EXPECT_NE(bad({{"value", 2e6}, {"source", "measured"}}).find("step_overhead_us.gpucal"), std::string::npos);
  EXPECT_NE(bad({{"value", -1}, {"source", "measured"}}).find("[0, 1000000]"), std::string::npos);
  EXPECT_NE(bad({{"value", 300}, {"source", "guessed"}}).find("source"), std::string::npos);
  EXPECT_NE(bad(300).find("step_overhead_us"), std::string::npos);
}

struct deployment {
  gm::model_spec m = gm::resolve_model("llama-3-8b");
  gm::gpu_spec gpu = gm::resolve_gpu("h100-sxm-80gb");
  gm::engine_profile engine = gm::resolve_engine("gpucal");
  gm::resolved_settings s = gm::resolve_settings(m, gpu, engine, {}, gpu.memory_bytes);
};

double overhead_op_s(const gm::step_time& s) {
  for (const auto& op : s.ops)
    if (op.name == "step_overhead") return op.time_s;
  throw std::runtime_error("no step_overhead operator");
}

TEST(step_overhead_coefficients, throughput_model_prefers_the_measured_value) {
  const deployment d;
  gm::coefficients c = gm::default_coefficients();
  {
    const gm::throughput_model perf(d.m, d.gpu, d.s, c.throughput, d.engine);
    const gm::step_time s = perf.decode_step(8, 1000);
    EXPECT_DOUBLE_EQ(overhead_op_s(s), 300e-6);  // gpucal.json step_overhead_us
    EXPECT_FALSE(s.overhead.from_coefficients);
    EXPECT_EQ(s.overhead.describe(), "300 us (engine profile default)");
  }
  // Another engine's measurement does not apply.
  c.throughput.step_overhead_us["vllm"] = {900, "measured", ""};
  EXPECT_DOUBLE_EQ(overhead_op_s(gm::throughput_model(d.m, d.gpu, d.s, c.throughput, d.engine).prefill(512)), 300e-6);
  c.throughput.step_overhead_us["gpucal"] = {412, "measured", ""};
  const gm::throughput_model perf(d.m, d.gpu, d.s, c.throughput, d.engine);
  for (const gm::step_time& s : {perf.decode_step(8, 1000), perf.prefill(512)}) {
    EXPECT_DOUBLE_EQ(overhead_op_s(s), 412e-6);
    EXPECT_TRUE(s.overhead.from_coefficients);
    EXPECT_EQ(s.overhead.describe(), "412 us (measured, calibration)");
  }
  EXPECT_EQ(perf.step_overhead().overhead_us.value, 412);
}

TEST(gpucal_engine, profile_facts) {
  const gm::engine_profile e = gm::resolve_engine("gpucal");
  EXPECT_EQ(e.display_name, "gpucal reference engine");
  EXPECT_EQ(e.version, "0.1.0");  // the project version (CMakeLists.txt)
  EXPECT_EQ(e.fraction_flag, "--gpu-memory-utilization");
  EXPECT_DOUBLE_EQ(e.fraction_default, 0.9);
  EXPECT_TRUE(e.fraction_rules.empty());
  for (auto i : {gm::memory_item::weights, gm::memory_item::activation_peak, gm::memory_item::non_torch})
    EXPECT_TRUE(e.charges(i)) << gm::memory_item_name(i);
  EXPECT_TRUE(e.outside(gm::memory_item::cuda_context));
  EXPECT_DOUBLE_EQ(e.kv_pool_factor, 1);
  EXPECT_EQ(e.logits_bytes_per_element, 0);
  EXPECT_EQ(e.step_overhead_us.value, 300);
  EXPECT_EQ(e.step_overhead_us.source, "default");
  EXPECT_EQ(e.block_size, 16);
  EXPECT_TRUE(e.mla_block_rules.empty());
  EXPECT_FALSE(e.cuda_graphs);
  for (const char* gpu : {"h100-sxm-80gb", "a10g"}) {
    EXPECT_EQ(e.max_num_seqs_for(gpu, 80ll << 30, 1), 256) << gpu;
    EXPECT_EQ(e.max_num_batched_tokens_for(gpu, 24ll << 30, 1), 8192) << gpu;
  }
  bool engine_src = false, scheduler = false;
  for (const auto& s : e.sources) {
    engine_src = engine_src || s.where.find("calibrate/engine/src/engine.cpp") != std::string::npos;
    scheduler = scheduler || s.where.find("calibrate/engine/src/scheduler.cpp") != std::string::npos;
  }
  EXPECT_TRUE(engine_src);
  EXPECT_TRUE(scheduler);
}

// Llama-3-8B at the gpucal defaults (8192 tokens, 256 rows): the sampler term has
// no FP32 logits, and the KV pool is the budget less the charged items.
TEST(gpucal_engine, activation_and_pool_by_hand) {
  const deployment d;
  const gm::coefficients c = gm::default_coefficients();
  const gm::activation_estimate a = gm::estimate_activation(d.m, d.s, d.engine, c.memory, 8192, 256);
  EXPECT_DOUBLE_EQ(a.forward_bytes, llama3_8b_forward_bytes(8192));
  EXPECT_DOUBLE_EQ(a.sampler_bytes, llama3_8b_sampler_bytes(8192, 256));
  EXPECT_EQ(a.widest_stage, "mlp");

  const gm::memory_estimate e = gm::estimate_memory(d.m, d.gpu, d.engine, c, {});
  EXPECT_EQ(e.activation.forward_tokens, 8192);
  EXPECT_EQ(e.activation.sampler_rows, 256);
  EXPECT_EQ(e.cuda_graph_bytes, 0);
  EXPECT_EQ(e.nccl_bytes, 0);
  const std::int64_t budget = static_cast<std::int64_t>(std::floor(static_cast<double>(e.gpu_total_bytes) * 0.9));
  EXPECT_EQ(e.budget_bytes, budget);
  EXPECT_EQ(e.kv_pool_bytes, budget - e.weights_bytes - e.activation.peak_bytes - e.non_torch_bytes);
  EXPECT_EQ(e.num_blocks, e.kv_pool_bytes / (16 * 131072));  // 16 tokens x 128 KiB per token
  EXPECT_EQ(e.outside_bytes, e.cuda_context_bytes);
  EXPECT_TRUE(e.fits);
}

TEST(gpucal_engine, parser_accepts_zero_logits_bytes_and_refuses_negative) {
  const auto profile = [](double logits_bytes) {
    nlohmann::json j = {
        {"schema", "gpucal.engine/1"}, {"engine", "t"}, {"display_name", "t"}, {"version", "1"},
        {"memory_fraction", {{"flag", "--f"}, {"default", 0.9}, {"rules", nlohmann::json::array()}}},
        {"budget_charges", {"weights", "activation_peak", "non_torch"}},
        {"outside_budget", {"cuda_context", "cuda_graphs", "nccl"}},
        {"kv_pool_factor", 1},
        {"activation", {{"forward_tokens_from", "max_num_batched_tokens"}, {"sampler_rows_from", "max_num_seqs"},
                        {"logits_bytes_per_element", logits_bytes}}},
        {"step_overhead_us", {{"value", 300}, {"source", "default"}}},
        {"defaults", {{"block_size", 16}, {"max_num_seqs", {{{"value", 256}}}}, {"max_num_batched_tokens", {{{"value", 8192}}}}}},
        {"sources", nlohmann::json::array()}};
    return j.dump();
  };
  EXPECT_EQ(gm::parse_engine_profile(profile(0), "t.json").logits_bytes_per_element, 0);
  EXPECT_THROW(gm::parse_engine_profile(profile(-1), "t.json"), gpucal::input_error);
}

}  // namespace
