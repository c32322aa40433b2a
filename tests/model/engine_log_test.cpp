// vLLM startup logs: the parser on real 0.19.0 logs, and the engine-profile
// fit with logs held out (tests/data/vllm_logs, sources in SOURCES.md).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "gpucal/model/catalog.hpp"
#include "gpucal/model/engine_log.hpp"
#include "gpucal/model/errors.hpp"
#include "gpucal/model/memory_model.hpp"
#include "test_support.hpp"

namespace gm = gpucal::model;
namespace fs = std::filesystem;

namespace {

const fs::path logs_dir = fs::path(GPUCAL_TEST_DATA_DIR) / "vllm_logs";

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(engine_log, reads_a_vllm_0_19_log) {
  const auto log = gm::parse_vllm_log(slurp(logs_dir / "meta-llama-llama-3-1-8b---h100-80gb--tp2pp1dp1--8192.log"), "tp2.log");
  EXPECT_EQ(log.version, "0.19.0");
  EXPECT_EQ(log.model, "meta-llama/Llama-3.1-8B-Instruct");
  EXPECT_EQ(log.tp, 2);
  EXPECT_EQ(log.pp, 1);
  EXPECT_DOUBLE_EQ(*log.gpu_memory_utilization, 0.95);
  EXPECT_EQ(*log.max_model_len, 8192);
  EXPECT_EQ(*log.max_num_batched_tokens, 8192);
  EXPECT_EQ(*log.max_num_seqs, 1024);  // "Defaulting max_num_seqs to 1024"
  EXPECT_EQ(log.dtype, "bfloat16");
  EXPECT_DOUBLE_EQ(*log.total_memory_gib, 79.19);
  ASSERT_EQ(log.workers.size(), 2u);  // one "Memory profiling takes" line per worker
  EXPECT_DOUBLE_EQ(log.workers[0].weights_gib, 7.51);
  EXPECT_DOUBLE_EQ(log.workers[0].activation_gib, 1.89);
  EXPECT_DOUBLE_EQ(log.workers[0].non_torch_gib, 2.07);
  EXPECT_DOUBLE_EQ(*log.available_kv_gib, 63.76);
  EXPECT_EQ(*log.kv_tokens, 1'044'688);
  EXPECT_DOUBLE_EQ(*log.max_concurrency, 127.53);
  EXPECT_DOUBLE_EQ(*log.cuda_graph_estimate_gib, 1.69);

  // The older one-block format of "Memory profiling takes" (vLLM <= 0.9).
  const auto old = gm::parse_vllm_log(
      "INFO 01-01 [llm_engine.py] Initializing an LLM engine (v0.6.4) with config: model='meta-llama/Meta-Llama-3-8B', "
      "dtype=torch.bfloat16, max_seq_len=8192, tensor_parallel_size=2, pipeline_parallel_size=1, quantization=None, "
      "enforce_eager=False, kv_cache_dtype=auto\n"
      "INFO 01-01 [worker.py] Memory profiling takes 5.04 seconds\n"
      "INFO 01-01 [worker.py] the current vLLM instance can use total_gpu_memory (79.22GiB) x gpu_memory_utilization (0.90) = 71.29GiB\n"
      "INFO 01-01 [worker.py] model weights take 7.51GiB; non_torch_memory takes 3.58GiB; PyTorch activation peak memory takes "
      "1.23GiB; the rest of the memory reserved for KV Cache is 58.97GiB.\n",
      "old.log");
  EXPECT_EQ(old.version, "0.6.4");
  EXPECT_EQ(old.tp, 2);
  EXPECT_DOUBLE_EQ(*old.total_memory_gib, 79.22);
  EXPECT_DOUBLE_EQ(*old.gpu_memory_utilization, 0.90);
  ASSERT_EQ(old.workers.size(), 1u);
  EXPECT_DOUBLE_EQ(old.workers[0].non_torch_gib, 3.58);
  EXPECT_DOUBLE_EQ(*old.available_kv_gib, 58.97);

  expect_input_error([] { gm::parse_vllm_log("INFO hello\nnothing to see\n", "empty.log"); },
                     {"empty.log", "Available KV cache memory"});
}

// The fit on the real logs, one in three held out: the held-out logs'
// available KV memory is predicted within 0.5 % (median) and 5 % (worst: the
// worst is Qwen2.5-72B at tp 2, whose whole pool is 3.04 GiB, 0.14 GiB off).
TEST(engine_log, fitted_profile_predicts_held_out_logs) {
  const std::map<std::string, std::string> names = {
      {"meta-llama/Llama-3.1-8B-Instruct", "llama-3.1-8b"},
      {"Qwen/Qwen2.5-7B-Instruct", "qwen2.5-7b"},
      {"Qwen/Qwen2.5-72B-Instruct", "qwen2.5-72b-instruct"},
      {"Qwen/Qwen3-8B", "qwen3-8b"},
      {"mistralai/Mixtral-8x7B-Instruct-v0.1", "mixtral-8x7b"},
      {"google/gemma-2-9b-it", "gemma-2-9b"},
      {"google/gemma-7b", "gemma-7b"},
      {"ibm-granite/granite-3.3-8b-instruct", "granite-3.3-8b-instruct"},
      {"microsoft/phi-2", "phi-2"},
      {"mistralai/Mistral-Small-3.1-24B-Instruct-2503", "mistral-small-3.1-24b-instruct-2503"},
      {"openai/gpt-oss-20b", "gpt-oss-20b"},
  };
  std::vector<gm::vllm_log> logs;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(logs_dir))
    if (e.path().extension() == ".log") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    auto log = gm::parse_vllm_log(slurp(f), f.filename().string());
    if (names.count(log.model) && log.quantization.empty()) logs.push_back(std::move(log));
  }
  ASSERT_GE(logs.size(), 25u);
  const auto resolve = [&](const std::string& repo) { return gm::resolve_model(names.at(repo)); };
  const auto f = gm::fit_engine_to_logs(logs, gm::resolve_engine("vllm@0.19"), gm::resolve_gpu("h100-sxm"),
                                        gm::default_coefficients(), 3, resolve);
  // NCCL's lazily connected buffers: about 1.8 GiB per GPU above the tp = 1 non-torch growth of about 0.25 GiB.
  ASSERT_TRUE(f.fitted.count("non_torch_bytes") && f.fitted.count("nccl_bytes_per_gpu") && f.fitted.count("activation_scale"));
  EXPECT_NEAR(f.fitted.at("non_torch_bytes").value / (1 << 30), 0.25, 0.05);
  EXPECT_NEAR(f.fitted.at("nccl_bytes_per_gpu").value / (1 << 30), 1.8, 0.2);
  const gm::kv_error_stats held = f.kv_error(true);
  ASSERT_GE(held.logs, 5u);
  EXPECT_LT(held.median_pct, 0.5);
  EXPECT_LT(held.max_pct, 5.0);
}

}  // namespace
