// Hostile input, one test per family of bad input: each case exits 2 with
// one line on stderr that names the field or flag, prints nothing on stdout,
// carries no JSON-library text, and leaves no file behind.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "cli_runner.hpp"
#include "gpucal/model/catalog.hpp"

namespace fs = std::filesystem;
using gpucal::test::run_gpucal;
using json = nlohmann::json;

namespace {

class hostile_input : public gpucal::test::scratch_test {
protected:
  hostile_input() : scratch_test("gpucal_hostile_") {}

  // Every path under the test folder, to show nothing was left behind.
  std::set<std::string> listing() const {
    std::set<std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(dir_)) out.insert(e.path().string());
    return out;
  }
  // A catalog model's config.json with one change applied, written to a file.
  std::string config(const std::string& model, const std::function<void(json&)>& change) {
    json root = json::parse(catalog_text(model));
    json cfg = root.at("config");
    change(cfg);
    return write(model + "_" + std::to_string(counter_++) + ".json", cfg.dump());
  }
  // The contract, for `args` with `needle` in the error line.
  void expect_refused(const std::vector<std::string>& args, const std::string& needle) {
    std::string joined;
    for (const auto& a : args) joined += (a.size() > 80 ? a.substr(0, 80) + "..." : a) + " ";
    SCOPED_TRACE(joined);
    const auto before = listing();
    const auto r = run_gpucal(args);
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_TRUE(r.out.empty()) << r.out;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_TRUE(r.err.starts_with("gpucal: error: ")) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << "expected '" << needle << "' in: " << r.err;
    EXPECT_EQ(r.err.find("json.exception"), std::string::npos) << r.err;
    EXPECT_EQ(listing(), before) << "a file was left behind";
  }
  void expect_config_refused(const std::string& path, const std::string& needle) {
    expect_refused({"estimate", "--model", path, "--gpu", "h100", "--json"}, needle);
    expect_refused({"perf", "--model", path, "--gpu", "h100", "--batch", "8", "--prompt-len", "100", "--output-len", "10"}, needle);
  }

  static std::string catalog_text(const std::string& model) {
    std::ifstream in(fs::path(GPUCAL_CATALOG_DIR) / "models" / (model + ".json"));
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

  int counter_ = 0;
};

// Sizes whose products overflowed 64-bit arithmetic (SIGFPE, negative weights
// printed as FITS) are refused at parse time, naming the field and its bound.
TEST_F(hostile_input, config_sizes_beyond_the_limits) {
  const std::int64_t p53 = 1LL << 53, p62 = 1LL << 62;
  const std::vector<std::pair<std::function<void(json&)>, std::string>> cases{
      {[&](json& c) { c["hidden_size"] = p53; }, "'hidden_size'"},
      {[&](json& c) { c["hidden_size"] = p62; }, "'hidden_size'"},
      {[&](json& c) { c["hidden_size"] = 2147483648LL; }, "'hidden_size'"},
      {[&](json& c) { c["head_dim"] = p53; }, "'head_dim'"},
      {[&](json& c) { c["num_key_value_heads"] = p62; }, "'num_key_value_heads'"},
      {[&](json& c) { c["vocab_size"] = 1e18; }, "'vocab_size'"},
      {[&](json& c) { c["num_hidden_layers"] = p62; }, "'num_hidden_layers'"},
      {[&](json& c) { c["num_hidden_layers"] = 2147483648LL; }, "'num_hidden_layers'"},
      {[&](json& c) { c["max_position_embeddings"] = p62; }, "'max_position_embeddings'"},
      {[&](json& c) { c["intermediate_size"] = 0; }, "'intermediate_size'"},
      {[&](json& c) { c["num_attention_heads"] = -32; }, "'num_attention_heads'"},
  };
  for (const auto& [change, needle] : cases) expect_config_refused(config("llama-3-8b", change), needle);
  // MoE and MLA sizes too.
  expect_config_refused(config("deepseek-v3", [](json& c) { c["n_routed_experts"] = 1LL << 40; }), "'n_routed_experts'");
  expect_config_refused(config("deepseek-v3", [](json& c) { c["kv_lora_rank"] = 1LL << 40; }), "'kv_lora_rank'");
}

// A rope factor scales the context; negative, huge or mistyped entries are refused.
TEST_F(hostile_input, rope_scaling) {
  const std::vector<std::pair<json, std::string>> cases{
      {{{"rope_type", "linear"}, {"factor", -8}}, "'factor'"},
      {{{"rope_type", "linear"}, {"factor", 1e300}}, "'factor'"},
      {{{"rope_type", "dynamic"}, {"factor", 1e6}}, "'factor'"},  // 8192 x 1e6 tokens: beyond 2^31
      {{{"rope_type", "yarn"}, {"factor", 1e300}, {"original_max_position_embeddings", 8192}}, "'factor'"},
      {{{"rope_type", 7}, {"factor", 2}}, "'rope_type'"},
      {{{"rope_type", 7}}, "'rope_type'"},
      {"abc", "'rope_scaling'"},
      {json::array({1, 2}), "'rope_scaling'"},
  };
  for (const auto& [rope, needle] : cases) {
    const json value = rope;  // a copy: clang 14 cannot capture a structured binding
    expect_config_refused(config("llama-3-8b", [&value](json& c) { c["rope_scaling"] = value; }), needle);
  }
}

// Values of the wrong type name the field and what was found.
TEST_F(hostile_input, config_type_mismatches) {
  expect_config_refused(config("qwen3-30b-a3b", [](json& c) { c["mlp_only_layers"] = json::array({"x"}); }), "'mlp_only_layers'");
  expect_config_refused(config("llama-3-8b", [](json& c) { c["torch_dtype"] = 5; }), "'torch_dtype'");
  expect_config_refused(config("llama-3-8b", [](json& c) { c["model_type"] = 5; }), "'model_type'");
  expect_config_refused(config("llama-3-8b", [](json& c) { c["hidden_size"] = "4096"; }), "'hidden_size'");
  expect_config_refused(config("llama-3-8b", [](json& c) { c["tie_word_embeddings"] = "yes"; }), "'tie_word_embeddings'");
  expect_config_refused(config("llama-3-8b", [](json& c) { c["quantization_config"] = "fp8"; }), "'quantization_config'");
  expect_config_refused(config("gemma-3-27b-it", [](json& c) { c["text_config"] = "abc"; }), "'text_config' must be an object");
  // A newline inside a value still gives one line.
  expect_config_refused(config("llama-3-8b", [](json& c) { c["model_type"] = "lla\nma"; }), "lla\\nma");
}

// Shapes that cannot exist: more KV heads than heads, layer indices past the end, odd group sizes.
TEST_F(hostile_input, config_structure_nonsense) {
  expect_config_refused(config("llama-3-8b", [](json& c) { c["num_key_value_heads"] = 64; }), "'num_key_value_heads'");
  expect_config_refused(config("llama-3-8b", [](json& c) { c["num_key_value_heads"] = 5; }), "'num_key_value_heads'");
  expect_config_refused(config("deepseek-v3", [](json& c) { c["first_k_dense_replace"] = 1000; }), "'first_k_dense_replace'");
  expect_config_refused(config("qwen3-30b-a3b", [](json& c) { c["num_experts_per_tok"] = 1000; }), "'num_experts_per_tok'");
  expect_config_refused(config("qwen3-30b-a3b", [](json& c) { c["mlp_only_layers"] = json::array({1000000000}); }),
                        "'mlp_only_layers'");
  expect_config_refused(config("llama-3-8b",
                               [](json& c) { c["quantization_config"] = {{"quant_method", "gptq"}, {"bits", 4}, {"group_size", 7}}; }),
                        "'group_size'");
  expect_config_refused(config("llama-3-8b",
                               [](json& c) { c["quantization_config"] = {{"quant_method", "gptq"}, {"bits", 3}}; }),
                        "'bits'");
  // Module patterns: no regex may crash or hang the matcher, no list may make the lookup run for minutes.
  const auto fp8_ignoring = [](json ignore, std::int64_t layers) {
    return [ignore, layers](json& c) {
      c["num_hidden_layers"] = layers;
      c["quantization_config"] = {{"quant_method", "compressed-tensors"},
                                  {"format", "float-quantized"},
                                  {"config_groups",
                                   {{"g", {{"targets", {"Linear"}}, {"weights", {{"num_bits", 8}, {"type", "float"}, {"strategy", "tensor"}}}}}}},
                                  {"ignore", ignore}};
    };
  };
  expect_config_refused(config("llama-3-8b", fp8_ignoring({"re:" + std::string(20000, '(') + "a" + std::string(20000, ')')}, 32)),
                        "'ignore' entry 0 is not a supported regular expression");
  expect_config_refused(config("llama-3-8b", fp8_ignoring({"re:(?=lookahead)"}, 32)), "'ignore'");
  json many = json::array();
  for (int i = 0; i < 1000; ++i) many.push_back("*layers." + std::to_string(i) + ".*");
  expect_config_refused(config("llama-3-8b", fp8_ignoring(many, 10000)), "need more than 5000000 tests");
  const auto hard = run_gpucal({"estimate", "-m", config("llama-3-8b", fp8_ignoring({"re:(.*)*x", "re:(a|aa)*$"}, 32)), "-g", "h100"});
  EXPECT_EQ(hard.code, 0) << hard.err;  // std::regex backtracks for hours on these
}

// Files that are not JSON, or JSON no parser should have to build.
TEST_F(hostile_input, malformed_files) {
  const std::string good = catalog_text("llama-3-8b");
  const std::string cfg = json::parse(good).at("config").dump();
  std::string overflow = cfg;
  overflow.insert(overflow.size() - 1, ", \"rms_norm_eps_extra\": 1e999");
  expect_config_refused(write("overflow.json", overflow), "not valid JSON (number overflow");
  expect_config_refused(write("deep.json", std::string(100000, '[') + std::string(100000, ']')), "nested deeper than 64");
  expect_config_refused(write("truncated.json", cfg.substr(0, cfg.size() / 2)), "not valid JSON");
  expect_config_refused(write("empty.json", ""), "not valid JSON");
  expect_config_refused(write("array.json", "[]"), "must be a JSON object");
  expect_config_refused("/dev/zero", "not a regular file");
  expect_config_refused(dir_.string(), "has no config.json");
  expect_config_refused((dir_ / "missing.json").string(), "no such file");
  expect_config_refused(std::string(5000, 'a') + "/config.json", "File name too long");
  // A file past the 64 MiB limit is refused from its size, without reading it.
  const std::string big = (dir_ / "big.json").string();
  std::ofstream(big).close();
  fs::resize_file(big, (64LL << 20) + 1);
  expect_config_refused(big, "the limit is 64 MiB");
}

// Flags out of range, non-finite or contradictory name themselves and their bound.
TEST_F(hostile_input, estimate_and_perf_flags) {
  const std::vector<std::string> e{"estimate", "-m", "llama-3-8b", "-g", "h100"};
  const auto with = [](std::vector<std::string> base, const std::vector<std::string>& more) {
    base.insert(base.end(), more.begin(), more.end());
    return base;
  };
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
      {{"--tp", "0"}, "--tensor-parallel-size"},
      {{"--tp", "99999999999"}, "--tp"},
      {{"--pp", "0"}, "--pipeline-parallel-size"},
      {{"--pp", "33"}, "--pipeline-parallel-size: 33 is outside [1, 32]"},
      {{"--max-num-seqs", "4611686018427387904"}, "--max-num-seqs: 4611686018427387904 is outside [1, 1048576]"},
      {{"--max-num-seqs", "0"}, "--max-num-seqs"},
      {{"--max-num-batched-tokens", "0"}, "--max-num-batched-tokens"},
      {{"--max-model-len", "9999999999"}, "--max-model-len"},
      {{"--max-model-len", "100000"}, "--max-model-len: 100000 exceeds"},
      {{"--gpu-memory-utilization", "nan"}, "--gpu-memory-utilization"},
      {{"--gpu-memory-utilization", "inf"}, "--gpu-memory-utilization"},
      {{"--group-size", "7"}, "--group-size"},
      {{"-q", "awq", "--group-size", "7"}, "--group-size: 7"},
      {{"-q", "gptq", "--group-size", "-1"}, "--group-size"},
      {{"--block-size", "7"}, "--block-size"},
      {{"--calibration", ""}, "--calibration: the path is empty"},
      {{"--calibration", "/dev/zero"}, "--calibration: '/dev/zero' is not a regular file"},
  };
  for (const auto& [flags, needle] : cases) expect_refused(with(e, flags), needle);

  const std::vector<std::string> p{"perf", "-m", "llama-3-8b", "-g", "h100"};
  const std::vector<std::pair<std::vector<std::string>, std::string>> perf_cases{
      {{"--batch", "inf", "--prompt-len", "100", "--output-len", "10"}, "--batch: inf"},
      {{"--batch", "nan", "--prompt-len", "100", "--output-len", "10"}, "--batch"},
      {{"--batch", "1e300", "--prompt-len", "100", "--output-len", "10"}, "--batch"},
      {{"--batch", "8", "--prompt-len", "inf", "--output-len", "10"}, "--prompt-len: inf"},
      {{"--batch", "8", "--prompt-len", "100", "--output-len", "-5"}, "--output-len"},
      // The request must fit the model's context, as estimate and plan require.
      {{"--batch", "8", "--prompt-len", "100500", "--output-len", "10"}, "--prompt-len + --output-len: 100510 tokens exceed the 8192"},
      {{"--batch", "8", "--prompt-len", "100", "--output-len", "10", "--max-model-len", "50"}, "--max-model-len"},
  };
  for (const auto& [flags, needle] : perf_cases) expect_refused(with(p, flags), needle);
}

TEST_F(hostile_input, plan_flags) {
  const std::vector<std::string> base{"plan", "-m", "llama-3-8b", "--prompt-len", "100", "--output-len", "10", "--gpus", "h100"};
  const auto plan = [&](std::vector<std::string> more) {
    std::vector<std::string> args = base;
    for (const char* required : {"--qps", "--ttft-p99", "--tpot-p99"})
      if (std::find(more.begin(), more.end(), required) == more.end()) {
        args.push_back(required);
        args.push_back(std::string(required) == "--qps" ? "1" : std::string(required) == "--ttft-p99" ? "1" : "0.1");
      }
    args.insert(args.end(), more.begin(), more.end());
    return args;
  };
  expect_refused(plan({"--qps", "inf"}), "--qps");
  expect_refused(plan({"--qps", "1e300"}), "--qps");
  expect_refused(plan({"--ttft-p99", "nan"}), "--ttft-p99");
  expect_refused(plan({"--max-num-batched-tokens", "0"}), "--max-num-batched-tokens: 0");
  expect_refused(plan({"--gpu-prices", "h100=1,h100-sxm=2"}), "--gpu-prices: h100-sxm-80gb is priced twice");
  expect_refused(plan({"--gpu-prices", "h100=inf"}), "--gpu-prices");
  expect_refused(plan({"--gpu-prices", "h100=0"}), "--gpu-prices: 'h100=0' is not GPU=PRICE with a price in (0,");
  expect_refused(plan({"--gpu-prices", "h100=-2"}), "--gpu-prices");
  expect_refused(plan({"--mode", "split"}), "--mode: 'split' is not a mode (allowed: agg, disagg, both)");
  expect_refused(plan({"--mode", "disagg", "--kv-link-gbps", "0"}), "--kv-link-gbps");
  expect_refused(plan({"--kv-link-gbps", "50"}), "--kv-link-gbps: applies to --mode disagg or both");
  expect_refused(plan({"--verify", "sometimes"}), "--verify");
  expect_refused(plan({"--itl-p99", "-1"}), "--itl-p99");
  expect_refused(plan({"--gpu-prices", "bogus=1"}), "--gpu-prices: unknown GPU 'bogus'");
  expect_refused(plan({"--top", "0"}), "--top");
  expect_refused(plan({"--max-gpus", "99999999"}), "--max-gpus");
  std::vector<std::string> bogus = plan({});
  bogus[8] = "bogus";  // --gpus bogus
  expect_refused(bogus, "--gpus: unknown GPU 'bogus'");
  expect_refused({"compare", "a.json", "b.json", "--threshold", "inf"}, "--threshold");
}

// A plan that fails on memory names no flag `plan` refuses.
TEST_F(hostile_input, plan_advice_names_only_its_own_flags) {
  const auto r = run_gpucal({"plan", "-m", "llama-3-70b", "--qps", "1", "--prompt-len", "1000", "--output-len", "100",
                             "--ttft-p99", "10", "--tpot-p99", "1", "--gpus", "l4", "--max-gpus", "1"});
  EXPECT_EQ(r.err.find("--gpu-memory-utilization"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("--gpu-memory-utilization"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("--max-model-len"), std::string::npos) << r.out;
}

// A figure printed with exit 0 is never negative: a deployment that does not
// fit reports what it lacks as a positive shortfall.
TEST_F(hostile_input, sizes_are_never_negative) {
  const auto r = run_gpucal({"estimate", "-m", "llama-3-70b", "-g", "l4", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_FALSE(j["fits"].get<bool>());
  EXPECT_GT(j["shortfall_bytes"].get<std::int64_t>(), 0);
  EXPECT_EQ(j["spare_bytes"].get<std::int64_t>(), 0);
  std::function<void(const json&, const std::string&)> walk = [&](const json& v, const std::string& at) {
    if (v.is_object()) {
      for (const auto& [k, x] : v.items()) walk(x, at + "." + k);
    } else if (v.is_array()) {
      for (std::size_t i = 0; i < v.size(); ++i) walk(v[i], at + "[" + std::to_string(i) + "]");
    } else if (v.is_number()) {
      EXPECT_GE(v.get<double>(), 0) << at;
    }
  };
  walk(j, "");
  const auto text = run_gpucal({"estimate", "-m", "llama-3-70b", "-g", "l4"});
  EXPECT_NE(text.out.find("beyond the GPU's memory"), std::string::npos) << text.out;
  EXPECT_EQ(text.out.find("left unused"), std::string::npos) << text.out;
}

}  // namespace
