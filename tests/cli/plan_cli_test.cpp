// `gpucal perf` and `gpucal plan` in-process: JSON keys, consistency of the
// printed figures, and bad flags (exit 2, one line, empty stdout).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "cli_runner.hpp"

namespace {

using gpucal::test::run_gpucal;

TEST(perf_cli, json_keys_and_consistency) {
  const auto r = run_gpucal({"perf", "--model", "llama-3-8b", "--gpu", "h100", "--batch", "32", "--prompt-len", "1000",
                      "--output-len", "500", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  for (const char* key : {"ttft_s", "tpot_s", "output_tokens_per_s", "prefill_s", "decode_step_s", "operators",
                          "step_overhead_us", "step_overhead_source"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["step_overhead_source"], "engine profile published range");
  EXPECT_DOUBLE_EQ(j["output_tokens_per_s"].get<double>(), 32 / j["tpot_s"].get<double>());
  double sum = 0, share = 0;
  for (const auto& op : j["operators"]) {
    sum += op["time_s"].get<double>();
    share += op["share"].get<double>();
    const std::string b = op["bound"];
    EXPECT_TRUE(b == "compute" || b == "memory" || b == "latency" || b == "overhead") << b;
  }
  EXPECT_NEAR(sum, j["decode_step_s"].get<double>(), 1e-12);
  EXPECT_NEAR(share, 1.0, 1e-12);
}

TEST(perf_cli, human_table_names_operators) {
  const auto r = run_gpucal({"perf", "-m", "llama-3-70b", "-g", "h100", "--tp", "4", "-b", "16", "--prompt-len", "512",
                      "--output-len", "128"});
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* needle : {"TTFT", "TPOT", "tokens/s", "gate_up_proj", "allreduce", "attention", "NVLink"})
    EXPECT_NE(r.out.find(needle), std::string::npos) << needle;
}

TEST(plan_cli, seed_case_json) {
  const auto r = run_gpucal({"plan", "--model", "llama-3-70b", "--qps", "50", "--prompt-len", "1000", "--output-len", "500",
                      "--ttft-p99", "2", "--tpot-p99", "0.1", "--gpus", "h100-sxm,a100-80gb", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_FALSE(j["plans"].empty());
  for (const auto& p : j["plans"]) {
    for (const char* key : {"gpu", "tp", "replicas", "total_gpus", "quantization", "kv_cache_dtype", "batch", "ttft_s",
                            "tpot_s", "kv_needed_bytes", "kv_pool_bytes"})
      EXPECT_TRUE(p.contains(key)) << key;
    EXPECT_EQ(p["total_gpus"].get<int>(), p["tp"].get<int>() * p["replicas"].get<int>());
    EXPECT_LE(p["ttft_p99_s"].get<double>(), 2.0);
    EXPECT_LE(p["tpot_p99_s"].get<double>(), 0.1);
    EXPECT_LE(p["kv_needed_bytes"].get<std::int64_t>(), p["kv_pool_bytes"].get<std::int64_t>());
  }
  ASSERT_TRUE(j.contains("rejected"));
  for (const auto& x : j["rejected"]) {
    const std::string kind = x["reason_kind"];
    EXPECT_TRUE(kind == "memory" || kind == "throughput" || kind == "ttft" || kind == "tpot" || kind == "unsupported") << kind;
    EXPECT_FALSE(x["reason"].get<std::string>().empty());
  }
  EXPECT_TRUE(j["rules"].contains("ttft_p99"));
}

TEST(plan_cli, human_output_ranks_and_explains) {
  const auto r = run_gpucal({"plan", "-m", "llama-3-8b", "--qps", "5", "--prompt-len", "512", "--output-len", "256",
                      "--ttft-p99", "1", "--tpot-p99", "0.05", "--gpus", "l4,h100", "--gpu-prices", "l4=0.8,h100=2.5",
                      "--top", "3"});
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* needle : {"Best:", "TTFT p99", "Little's law", "$/h", "  1 "}) EXPECT_NE(r.out.find(needle), std::string::npos) << needle;
  EXPECT_EQ(r.out.find("  4 "), std::string::npos);  // --top 3
}

TEST(plan_cli, bad_flags_exit_2_with_one_line) {
  const std::vector<std::string> base = {"plan", "-m", "llama-3-8b", "--prompt-len", "512", "--output-len", "256",
                                         "--ttft-p99", "1", "--tpot-p99", "0.05"};
  const auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {with({"--qps", "0"}), "--qps"},
      {with({"--qps", "-3"}), "--qps"},
      {with({"--qps", "lots"}), "--qps"},
      {with({"--qps", "1", "--quantization", "fp4"}), "--quantization"},
      {with({"--qps", "1", "--kv-cache-dtype", "int8"}), "--kv-cache-dtype"},
      {with({"--qps", "1", "--gpus", "h1000"}), "--gpu"},
      {with({"--qps", "1", "--max-gpus", "0"}), "--max-gpus"},
      {with({"--qps", "1", "--top", "0"}), "--top"},
      {with({"--qps", "1", "--gpu-prices", "h100"}), "--gpu-prices"},
      {with({"--qps", "1", "--gpu-prices", "h100=-2"}), "--gpu-prices"},
      {with({"--qps", "1", "--engine", "ollama"}), "--engine"},
      {base, "--qps"},
      {{"perf", "-m", "llama-3-8b", "-g", "h100", "--prompt-len", "10", "--output-len", "10"}, "--batch"},
      {{"perf", "-m", "llama-3-8b", "-g", "h100", "-b", "0", "--prompt-len", "10", "--output-len", "10"}, "--batch"},
      {{"perf", "-m", "llama-3-8b", "-g", "a10g", "-b", "1", "--prompt-len", "10", "--output-len", "10"}, "A10G"},
  };
  gpucal::test::expect_bad_input(cases);
}

TEST(plan_cli, serve_command_parses_back_into_the_same_settings) {
  for (const char* engine : {"vllm", "sglang"}) {
    SCOPED_TRACE(engine);
    const auto r = run_gpucal({"plan", "--model", "llama-3.1-70b", "--qps", "5", "--prompt-len", "2000", "--output-len", "300",
                               "--ttft-p99", "2", "--tpot-p99", "0.05", "--gpus", "h100,h200", "--engine", engine, "--top", "20",
                               "--json"});
    ASSERT_EQ(r.code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    int checked = 0;
    for (const auto& p : j["plans"]) {
      const auto args = p["serve_command"].get<std::vector<std::string>>();
      ASSERT_GE(args.size(), 4u);
      const std::string q = p["quantization"];
      if (q == "int8" || q == "int4") {  // a pre-quantized checkpoint, named in the notes, not a flag
        EXPECT_NE(p["serve_notes"].dump().find(q == "int8" ? "W8A8" : "AWQ or GPTQ"), std::string::npos);
        continue;
      }
      // gpucal estimate reads vLLM's and SGLang's flags: the command's flags, fed back, give the plan's replica.
      std::vector<std::string> est = {"estimate", "--model", "llama-3.1-70b", "--gpu", p["gpu_slug"], "--engine", engine, "--json"};
      std::size_t first_flag = 0;
      if (std::string(engine) == "vllm") {
        EXPECT_EQ(args[0], "vllm");
        EXPECT_EQ(args[1], "serve");
        EXPECT_EQ(args[2], "meta-llama/Llama-3.1-70B-Instruct");
        first_flag = 3;
      } else {
        EXPECT_EQ(args[2], "sglang.launch_server");
        EXPECT_EQ(args[4], "meta-llama/Llama-3.1-70B-Instruct");
        first_flag = 5;
      }
      for (std::size_t i = first_flag; i < args.size(); ++i) {
        std::string a = args[i];
        // SGLang's spellings of the same settings, as gpucal reads them.
        if (a == "--tp-size") a = "--tp";
        else if (a == "--pp-size") a = "--pp";
        else if (a == "--context-length") a = "--max-model-len";
        else if (a == "--max-running-requests") a = "--max-num-seqs";
        else if (a == "--chunked-prefill-size") a = "--max-num-batched-tokens";
        est.push_back(a);
      }
      const auto e = run_gpucal(est);
      ASSERT_EQ(e.code, 0) << e.err;
      const auto ej = nlohmann::json::parse(e.out);
      EXPECT_EQ(ej["tp"], p["tp"]);
      EXPECT_EQ(ej["kv_pool_bytes"], p["kv_pool_bytes"]);
      EXPECT_DOUBLE_EQ(ej["memory_fraction"].get<double>(), p["memory_fraction"].get<double>());
      for (const auto& s : ej["settings"]) {
        const std::string name = s["name"];
        if (name == "max_model_len" || name == "max_num_seqs" || name == "max_num_batched_tokens") {
          EXPECT_EQ(s["value"], std::to_string(p[name].get<long long>())) << name;
        }
      }
      ++checked;
    }
    EXPECT_GE(checked, 2);
  }
}

}  // namespace
