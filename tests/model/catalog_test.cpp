// The embedded catalogs load, every entry parses, names resolve
// case-insensitively, unknown names suggest the nearest, and the GPU list
// covers what the planner needs.
#include <gtest/gtest.h>

#include <set>

#include "gpucal/model/catalog.hpp"
#include "gpucal/model/errors.hpp"
#include "gpucal/model/tensor_inventory.hpp"
#include "test_support.hpp"

namespace gm = gpucal::model;

namespace {

TEST(catalog, every_model_parses_and_has_a_source) {
  const auto models = gm::list_models();
  EXPECT_GE(models.size(), 10u);
  for (const auto& e : models) {
    SCOPED_TRACE(e.name);
    EXPECT_FALSE(e.source.empty());
    const auto m = gm::resolve_model(e.name);
    EXPECT_GT(gm::build_inventory(m, 1).total_params(), 0);
  }
}

TEST(catalog, required_models_are_present) {
  for (const char* name : {"llama-2-7b", "llama-3-8b", "llama-3-70b", "llama-3.1-8b", "qwen2.5-7b", "qwen2.5-32b",
                           "mistral-7b", "mixtral-8x7b", "qwen3-30b-a3b", "deepseek-v3", "deepseek-r1", "llama-3.1-70b", "llama-3.1-405b",
                           "qwen2.5-72b"})
    EXPECT_NO_THROW(gm::resolve_model(name)) << name;
}

TEST(catalog, names_are_case_insensitive_and_aliases_work) {
  EXPECT_EQ(gm::resolve_model("LLAMA-3-8B").hidden_size, 4096);
  EXPECT_EQ(gm::resolve_model("meta-llama/Meta-Llama-3-8B").hidden_size, 4096);
  EXPECT_EQ(gm::resolve_gpu("H100").slug, "h100-sxm-80gb");
  EXPECT_EQ(gm::resolve_gpu("a100-80gb").compute_capability, "8.0");
}

TEST(catalog, unknown_names_suggest_the_nearest) {
  try {
    gm::resolve_model("llama-3-8bb");
    FAIL();
  } catch (const gpucal::input_error& e) {
    EXPECT_NE(std::string(e.what()).find("--model"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("did you mean 'llama-3-8b'"), std::string::npos) << e.what();
  }
  try {
    gm::resolve_gpu("h10");
    FAIL();
  } catch (const gpucal::input_error& e) {
    EXPECT_NE(std::string(e.what()).find("--gpu"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("did you mean"), std::string::npos) << e.what();
  }
  EXPECT_THROW(gm::resolve_engine("ollama"), gpucal::input_error);
  EXPECT_THROW(gm::resolve_model("/nonexistent/config.json"), gpucal::input_error);
}

TEST(catalog, gpus_cover_the_required_skus_with_sane_figures) {
  std::set<std::string> aliases;
  for (const char* name : {"rtx-3090", "rtx-4090", "a10g", "l4", "l40s", "a40", "a100-40gb", "a100-80gb", "h100-pcie",
                           "h100-sxm", "h100-nvl", "h200", "b200"}) {
    SCOPED_TRACE(name);
    const auto& g = gm::resolve_gpu(name);
    EXPECT_GE(g.memory_bytes, 16LL << 30);
    EXPECT_GT(g.hbm_bandwidth_gbps, 100);
    EXPECT_GT(g.sm_count, 0);
    EXPECT_FALSE(g.sources.empty());
  }
  for (const auto& g : gm::list_gpus())
    for (const auto& a : g.aliases) EXPECT_TRUE(aliases.insert(a).second) << "alias repeated: " << a;
  EXPECT_TRUE(gm::resolve_gpu("h100-sxm").supports("fp8"));
  EXPECT_FALSE(gm::resolve_gpu("a100-80gb").supports("fp8"));
}

TEST(catalog, engines_and_default_coefficients_load) {
  EXPECT_EQ(gm::list_engines().size(), 7u);
  for (const char* name : {"vllm", "vllm@0.11", "vllm@0.19.0", "sglang", "sglang@0.5.3", "tgi", "gpucal"}) {
    const auto e = gm::resolve_engine(name);
    EXPECT_FALSE(e.sources.empty()) << name;
    EXPECT_TRUE(e.charges(gm::memory_item::weights)) << name;
  }
  // Plain names take the newest version profiled; unknown versions name the known ones.
  EXPECT_EQ(gm::resolve_engine("vllm").version, "0.33.0");
  EXPECT_EQ(gm::resolve_engine("VLLM@0.19").version, "0.19.0");
  EXPECT_EQ(gm::resolve_engine("sglang").version, "0.5.23");  // 0.5.23 is newer than 0.5.3: versions compare by number
  expect_input_error([] { gm::resolve_engine("vllm@0.7"); }, {"vllm@0.11.0, vllm@0.19.0, vllm@0.33.0"});
  EXPECT_THROW(gm::resolve_engine("vllm@0.1"), gpucal::input_error);  // a prefix of no version: 0.1 is not 0.11
  const auto c = gm::default_coefficients();
  EXPECT_EQ(c.source, "default");
  EXPECT_EQ(c.memory.cuda_context_bytes.source, "default");
  EXPECT_FALSE(c.memory.cuda_context_bytes.note.empty());
}

TEST(coefficients, calibration_files_are_validated) {
  EXPECT_THROW(gm::parse_coefficients(R"({"schema": "gpucal.calibration/2"})", "x.json"), gpucal::input_error);
  try {
    gm::parse_coefficients(R"({"schema": "gpucal.coefficients/1", "memory": {"cuda_context_bytes": {"value": -1, "source": "measured"}}})",
                           "x.json");
    FAIL();
  } catch (const gpucal::input_error& e) {
    EXPECT_NE(std::string(e.what()).find("cuda_context_bytes"), std::string::npos) << e.what();
  }
  EXPECT_THROW(gm::load_coefficients_file("/nonexistent.json"), gpucal::input_error);
}

}  // namespace
