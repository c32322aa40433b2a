// `gpucal` driven in-process: the --json contract of estimate, the listing
// commands, and every bad-input case (one line on stderr, exit 2, nothing
// on stdout).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli_runner.hpp"

namespace {

using gpucal::test::run_gpucal;

TEST(estimate_cli, json_contract) {
  const auto r = run_gpucal({"estimate", "--model", "llama-3-8b", "--gpu", "a100-80gb", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.err.empty());
  const auto j = nlohmann::json::parse(r.out);
  for (const char* key : {"model", "gpu", "tp", "engine", "params", "active_params", "weights_bytes",
                          "kv_bytes_per_token", "activation_peak_bytes", "overhead_bytes", "cuda_graph_bytes",
                          "gpu_total_bytes", "kv_pool_bytes", "block_size", "num_blocks", "max_tokens",
                          "max_concurrency", "fits", "coefficients_source"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["model"], "Llama-3-8B");
  EXPECT_EQ(j["tp"], 1);
  EXPECT_EQ(j["engine"], "vllm");
  EXPECT_EQ(j["params"], 8030261248LL);
  EXPECT_EQ(j["weights_bytes"], 16060522496LL);
  EXPECT_EQ(j["kv_bytes_per_token"], 131072);
  EXPECT_EQ(j["block_size"], 16);
  EXPECT_EQ(j["max_tokens"].get<std::int64_t>(), j["num_blocks"].get<std::int64_t>() * 16);
  EXPECT_DOUBLE_EQ(j["max_concurrency"].get<double>(), j["max_tokens"].get<double>() / j["max_model_len"].get<double>());
  EXPECT_EQ(j["num_blocks"].get<std::int64_t>(), j["kv_pool_bytes"].get<std::int64_t>() / (16 * 131072));
  EXPECT_EQ(j["fits"], true);
  EXPECT_EQ(j["coefficients_source"], "default");
}

TEST(estimate_cli, vllm_flag_spellings_are_accepted) {
  const auto r = run_gpucal({"estimate", "-m", "llama-3-70b", "-g", "h100", "--tensor-parallel-size", "4", "--dtype",
                      "bfloat16", "--quantization", "fp8", "--kv-cache-dtype", "fp8", "--gpu-memory-utilization",
                      "0.85", "--max-model-len", "4096", "--max-num-seqs", "128", "--max-num-batched-tokens", "4096",
                      "--block-size", "32", "--enforce-eager", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["tp"], 4);
  EXPECT_EQ(j["quantization"], "fp8");
  EXPECT_EQ(j["kv_bytes_per_token"], 2 * 80 * 2 * 128);
  EXPECT_EQ(j["block_size"], 32);
  EXPECT_EQ(j["cuda_graph_bytes"], 0);
  EXPECT_DOUBLE_EQ(j["memory_fraction"].get<double>(), 0.85);
}

TEST(estimate_cli, human_output_explains_the_breakdown) {
  const auto r = run_gpucal({"estimate", "--model", "llama-3-70b", "--gpu", "h100-sxm"});
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* needle : {"weights", "KV cache pool", "DOES NOT FIT", "GiB", "vllm default"})
    EXPECT_NE(r.out.find(needle), std::string::npos) << needle;
  EXPECT_NE(r.out.find("327,680 bytes (320.0 KiB)"), std::string::npos);
}

TEST(estimate_cli, config_path_is_accepted) {
  const auto dir = std::filesystem::temp_directory_path() / "gpucal_cli_test";
  std::filesystem::create_directories(dir);
  const auto path = dir / "config.json";
  std::ofstream(path) << R"({"model_type": "llama", "hidden_size": 256, "intermediate_size": 512,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000,
    "max_position_embeddings": 2048, "torch_dtype": "bfloat16"})";
  const auto r = run_gpucal({"estimate", "--model", path.string(), "--gpu", "l4", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  // 2 x 1000 x 256 embeddings + 2 layers x (attention 2 x 256^2 + 2 x 256 x 128, MLP 3 x 256 x 512, 2 norms) + norm.
  EXPECT_EQ(j["params"], 2 * 1000 * 256 + 2 * (2 * 256 * 256 + 2 * 256 * 128 + 3 * 256 * 512 + 2 * 256) + 256);
  std::filesystem::remove_all(dir);
}

TEST(listing_cli, models_gpus_engines) {
  const auto m = run_gpucal({"models"});
  ASSERT_EQ(m.code, 0) << m.err;
  EXPECT_NE(m.out.find("Llama-3-8B"), std::string::npos);
  EXPECT_NE(m.out.find("8,030,261,248"), std::string::npos);
  const auto g = run_gpucal({"gpus", "--json"});
  ASSERT_EQ(g.code, 0) << g.err;
  EXPECT_GE(nlohmann::json::parse(g.out).size(), 13u);
  const auto e = run_gpucal({"engines"});
  ASSERT_EQ(e.code, 0) << e.err;
  EXPECT_NE(e.out.find("sglang"), std::string::npos);
  EXPECT_NE(e.out.find("gpucal reference engine"), std::string::npos);
}

// Every bad input: exit 2, a single line on stderr naming the problem, nothing on stdout.
TEST(estimate_cli, bad_input_exits_2_with_one_line) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"estimate", "--model", "llama-9-8b", "--gpu", "h100"}, "did you mean"},
      {{"estimate", "--model", "llama-3-8b", "--gpu", "h1000"}, "--gpu"},
      {{"estimate", "--model", "llama-3-8b", "--gpu", "h100", "--gpu-memory-utilization", "0"}, "(0, 1]"},
      {{"estimate", "--model", "llama-3-8b", "--gpu", "h100", "--gpu-memory-utilization", "1.2"}, "(0, 1]"},
      {{"estimate", "--model", "llama-3-8b", "--gpu", "h100", "--tp", "3"}, "--tensor-parallel-size"},
      {{"estimate", "--model", "llama-3-8b", "--gpu", "h100", "--tp", "0"}, "--tensor-parallel-size"},
      {{"estimate", "--model", "llama-3-8b", "--gpu", "h100", "--max-model-len", "-4"}, "--max-model-len"},
      {{"estimate", "--model", "llama-3-8b", "--gpu", "h100", "--max-num-seqs", "0"}, "--max-num-seqs"},
      {{"estimate", "--model", "llama-3-8b", "--gpu", "h100", "--block-size", "-16"}, "--block-size"},
      {{"estimate", "--model", "llama-3-8b", "--gpu", "h100", "--group-size", "0"}, "--group-size"},
      {{"estimate", "--model", "llama-3-8b", "--gpu", "h100", "--quantization", "nf4"}, "--quantization"},
      {{"estimate", "--model", "llama-3-8b", "--gpu", "h100", "--engine", "ollama"}, "--engine"},
      {{"estimate", "--model", "llama-3-8b", "--gpu", "h100", "--tp", "two"}, "--tp"},
      {{"estimate", "--model", "llama-3-8b"}, "--gpu"},
      {{"estimate", "--model", "llama-3-8b", "--gpu", "h100", "--calibration", "/nonexistent.json"}, "--calibration"},
      {{"estimate", "--model", "/nonexistent/config.json", "--gpu", "h100"}, "--model"},
      {{"frobnicate"}, "frobnicate"},
  };
  gpucal::test::expect_bad_input(cases);
}

TEST(estimate_cli, malformed_config_names_the_field) {
  const auto dir = std::filesystem::temp_directory_path() / "gpucal_cli_bad";
  std::filesystem::create_directories(dir);
  const auto path = dir / "config.json";
  std::ofstream(path) << R"({"model_type": "llama", "hidden_size": 256})";
  const auto r = run_gpucal({"estimate", "--model", path.string(), "--gpu", "l4"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(r.out.empty());
  EXPECT_NE(r.err.find("num_hidden_layers"), std::string::npos) << r.err;
  std::filesystem::remove_all(dir);
}

}  // namespace

// `validate` and `probe-engine` run gpucal-engine from the main binary; the
// in-process CLI never reaches them with the engine present, so it must
// answer with a clear error and exit 2.
TEST(GpuCommandsCli, WithoutTheEngineBinaryTheyNameWhatIsMissing) {
  for (const char* cmd : {"validate", "probe-engine"}) {
    const auto r = gpucal::test::run_gpucal({cmd, "--calibration", "x.json"});
    EXPECT_EQ(r.code, 2) << cmd;
    EXPECT_TRUE(r.out.empty()) << cmd;
    EXPECT_NE(r.err.find("needs gpucal-engine"), std::string::npos) << r.err;
  }
}
