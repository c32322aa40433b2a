// `gpucal fit`, `show`, `history` and `compare` on synthetic gpucal_bench
// JSON, and planning commands picking the newest calibration for their GPU.
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <set>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_runner.hpp"
#include "synthetic_bench.hpp"

namespace fs = std::filesystem;
using gpucal::test::run_gpucal;

namespace {

using gpucal::test::bench_json;

class calibration_cli : public gpucal::test::scratch_test {
protected:
  calibration_cli() : scratch_test("gpucal_cal_cli_") {}
  void TearDown() override {
    unsetenv("GPUCAL_RESULTS_DIR");
    scratch_test::TearDown();
  }
  // Runs `gpucal fit` and returns the file it wrote.
  std::string fit(const std::string& bench, const std::string& out) {
    const auto r = run_gpucal({"fit", "--bench", bench, "--gpu", "h100-sxm", "--out", out, "--json"});
    EXPECT_EQ(r.code, 0) << r.err;
    return nlohmann::json::parse(r.out).at("path").get<std::string>();
  }
};

TEST_F(calibration_cli, fit_show_history_and_default_pickup) {
  const std::string results = (dir_ / "results").string();
  const std::string file = fit(write("bench.json", bench_json(1.0)), results);
  EXPECT_EQ(fs::path(file).parent_path().filename(), "h100-sxm-80gb");
  EXPECT_TRUE(fs::exists(file));

  const auto show = run_gpucal({"show", file});
  ASSERT_EQ(show.code, 0) << show.err;
  EXPECT_NE(show.out.find("gemm/bf16"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("bandwidth/copy"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("attention/prefill"), std::string::npos) << show.out;
  // The synthetic prefill chunks of >= 4096 tokens ran at 45 % of the bf16 peak.
  std::ifstream cal_in(file);
  const auto cal = nlohmann::json::parse(cal_in);
  EXPECT_NEAR(cal["coefficients"]["throughput"]["prefill_attention_efficiency"]["value"].get<double>(), 0.45, 1e-3);
  EXPECT_EQ(cal["coefficients"]["throughput"]["prefill_attention_efficiency"]["source"], "measured");
  EXPECT_NE(show.out.find("(measured)"), std::string::npos) << show.out;

  const auto history = run_gpucal({"history", (fs::path(results) / "h100-sxm-80gb").string()});
  ASSERT_EQ(history.code, 0) << history.err;
  EXPECT_NE(history.out.find("580.159.04"), std::string::npos) << history.out;

  // With the results folder pointed here, planning for an H100 uses that file.
  setenv("GPUCAL_RESULTS_DIR", results.c_str(), 1);
  const auto est = run_gpucal({"estimate", "-m", "llama-3-8b", "-g", "h100", "--json"});
  ASSERT_EQ(est.code, 0) << est.err;
  const auto j = nlohmann::json::parse(est.out);
  EXPECT_EQ(j["coefficients_source"], "calibration " + file);
  EXPECT_EQ(j["gpu_total_bytes"], 85031714816LL);  // measured total, not the datasheet's
  // Another GPU has no calibration: defaults, and it says so.
  const auto other = run_gpucal({"estimate", "-m", "llama-3-8b", "-g", "a100-80gb", "--json"});
  EXPECT_EQ(nlohmann::json::parse(other.out)["coefficients_source"], "default");
}

TEST_F(calibration_cli, export_llm_analysis_and_csv) {
  const std::string file = fit(write("bench.json", bench_json(1.0)), (dir_ / "results").string());
  const std::string out = (dir_ / "export").string();
  const auto r = run_gpucal({"export", "--format", "llm-analysis", file, "--out", out});
  ASSERT_EQ(r.code, 0) << r.err;
  std::ifstream cfg_in(fs::path(out) / "h100-sxm-80gb.json");
  const auto cfg = nlohmann::json::parse(cfg_in);
  // Exactly llm-analysis's GPUConfig keys.
  std::vector<std::string> keys;
  for (const auto& [k, v] : cfg.items()) keys.push_back(k);
  std::vector<std::string> expected{"name", "mem_per_GPU_in_GB", "hbm_bandwidth_in_GB_per_sec",
                                    "intra_node_bandwidth_in_GB_per_sec", "intra_node_min_message_latency",
                                    "peak_fp16_TFLOPS", "peak_i8_TFLOPS", "peak_i4_TFLOPS",
                                    "inter_node_bandwidth_in_GB_per_sec"};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(keys, expected);  // nlohmann::json iterates keys sorted
  EXPECT_DOUBLE_EQ(cfg["hbm_bandwidth_in_GB_per_sec"].get<double>(), 3350);
  EXPECT_NEAR(cfg["mem_per_GPU_in_GB"].get<double>(), 85031714816.0 / (1 << 30), 1e-9);
  std::ifstream eff_in(fs::path(out) / "h100-sxm-80gb.efficiencies.json");
  const auto eff = nlohmann::json::parse(eff_in);
  // The synthetic GEMMs ran at 75 % of peak at large M; copies at 2 x 4 GiB / 2.9 ms.
  EXPECT_NEAR(eff["flops_efficiency"].get<double>(), 0.75, 0.02);
  EXPECT_NEAR(eff["hbm_memory_efficiency"].get<double>(), 2.0 * 4294967296 / 2901e-6 / 1e9 / 3350, 0.01);
  const auto csv = run_gpucal({"export", "--format", "csv", file, "--out", out});
  ASSERT_EQ(csv.code, 0) << csv.err;
  std::ifstream table(fs::path(out) / "h100-sxm-80gb.gemm.csv");
  std::string header;
  std::getline(table, header);
  EXPECT_EQ(header, "name,dtype,shape,m,n,k,median_us,tflops,samples");
  int rows = 0;
  for (std::string line; std::getline(table, line);) ++rows;
  EXPECT_EQ(rows, 15);
  gpucal::test::expect_bad_input({{{"export", "--format", "xlsx", file}, "--format"}});
}

TEST_F(calibration_cli, compare_flags_regressions_with_exit_1) {
  const std::string a = fit(write("a.json", bench_json(1.0)), (dir_ / "a").string());
  const std::string b = fit(write("b.json", bench_json(1.10)), (dir_ / "b").string());
  const auto same = run_gpucal({"compare", a, a});
  EXPECT_EQ(same.code, 0) << same.out;
  const auto worse = run_gpucal({"compare", a, b, "--alpha", "0.2"});  // 3 samples each: exact p >= 0.1
  EXPECT_EQ(worse.code, 1) << worse.out;
  EXPECT_NE(worse.out.find("REGRESSION"), std::string::npos) << worse.out;
  const auto j = run_gpucal({"compare", a, b, "--alpha", "0.2", "--json"});
  EXPECT_GT(nlohmann::json::parse(j.out)["regressions"].get<int>(), 0);
}

TEST_F(calibration_cli, bad_input_exits_2) {
  const std::string good = write("bench.json", bench_json(1.0));
  gpucal::test::expect_bad_input({
      {{"fit", "--bench", (dir_ / "missing.json").string(), "--gpu", "h100"}, "--bench"},
      {{"fit", "--bench", write("empty.json", R"({"context": {}, "benchmarks": []})"), "--gpu", "h100"}, "no gpucal_bench"},
      {{"fit", "--bench", good, "--gpu", "h999"}, "--gpu"},
      {{"compare", good, good}, "schema"},
      {{"compare", (dir_ / "x.json").string(), (dir_ / "y.json").string()}, "cannot read"},
      {{"compare", good, good, "--threshold", "-1"}, "--threshold"},
      {{"history", (dir_ / "nowhere").string()}, "not a folder"},
  });
}

}  // namespace

namespace {

// Every path under `dir`, to show a refused command left nothing behind.
std::set<std::string> listing(const fs::path& dir) {
  std::set<std::string> out;
  if (fs::exists(dir))
    for (const auto& e : fs::recursive_directory_iterator(dir)) out.insert(e.path().string());
  return out;
}

// The bench JSON with `change` applied to every benchmark run.
std::string bench_with(const std::function<void(nlohmann::json&)>& change) {
  nlohmann::json j = nlohmann::json::parse(bench_json(1.0));
  for (auto& run : j["benchmarks"]) change(run);
  return j.dump();
}

}  // namespace

// One validation for every reader: show, --calibration and the newest-file
// lookup refuse what fit would never write, and say which file.
TEST_F(calibration_cli, one_validation_for_every_reader) {
  const std::string results = (dir_ / "results").string();
  const std::string file = fit(write("bench.json", bench_json(1.0)), results);
  nlohmann::json j = nlohmann::json::parse(std::ifstream(file));
  j["device"]["sku"] = "h100-sxm-80gb-typo";
  const std::string unknown = write("unknown_sku.json", j.dump());
  gpucal::test::expect_bad_input({
      {{"show", unknown}, "field 'sku' 'h100-sxm-80gb-typo' is not the slug of a GPU"},
      {{"estimate", "-m", "llama-3-8b", "-g", "h100", "--calibration", unknown}, "'sku'"},
      {{"compare", file, unknown}, "'sku'"},
      {{"export", "--format", "csv", unknown, "--out", dir_.string()}, "'sku'"},
  });

  // A calibration of another GPU is refused, or applied with a warning when asked.
  gpucal::test::expect_bad_input({
      {{"estimate", "-m", "llama-3-8b", "-g", "a100-80gb", "--calibration", file},
       "was measured on h100-sxm-80gb, not on a100-sxm-80gb (pass --allow-other-gpu-calibration"},
      {{"plan", "-m", "llama-3-8b", "--qps", "1", "--prompt-len", "100", "--output-len", "10", "--ttft-p99", "1", "--tpot-p99",
        "0.1", "--gpus", "h100,a100-80gb", "--calibration", file},
       "not on a100-sxm-80gb"},
  });
  const auto allowed = run_gpucal({"estimate", "-m", "llama-3-8b", "-g", "a100-80gb", "--calibration", file,
                                   "--allow-other-gpu-calibration", "--json"});
  ASSERT_EQ(allowed.code, 0) << allowed.err;
  EXPECT_EQ(std::count(allowed.err.begin(), allowed.err.end(), '\n'), 1) << allowed.err;
  EXPECT_NE(allowed.err.find("gpucal: warning: coefficients measured on h100-sxm-80gb"), std::string::npos) << allowed.err;
  const auto a = nlohmann::json::parse(allowed.out);
  EXPECT_NE(a["notes"].dump().find("--allow-other-gpu-calibration"), std::string::npos);
  EXPECT_NE(a["gpu_total_bytes"], 85031714816LL);  // the H100's measured total is not the A100's

  // An invalid file among the calibrations is reported, never passed over.
  setenv("GPUCAL_RESULTS_DIR", results.c_str(), 1);
  const std::string broken = (fs::path(results) / "h100-sxm-80gb" / "zz_newer.json").string();
  std::ofstream(broken) << R"({"schema": "gpucal.calibration/1"})";
  gpucal::test::expect_bad_input({
      {{"estimate", "-m", "llama-3-8b", "-g", "h100", "--json"}, "zz_newer.json"},
  });
  const auto history = run_gpucal({"history", (fs::path(results) / "h100-sxm-80gb").string()});
  EXPECT_EQ(history.code, 0) << history.err;
  EXPECT_NE(history.out.find("invalid: " + broken), std::string::npos) << history.out;
  fs::remove(broken);
  // Raw benchmark JSON beside the calibrations is not a calibration and is not opened.
  std::ofstream(fs::path(results) / "h100-sxm-80gb" / "bench_2026-11-30T000000Z.json") << "{}";
  EXPECT_EQ(run_gpucal({"estimate", "-m", "llama-3-8b", "-g", "h100"}).code, 0);
}

// fit refuses benchmark JSON that would make a calibration its own show
// rejects, and leaves no file and no folder behind.
TEST_F(calibration_cli, fit_refuses_what_show_would_reject) {
  const fs::path results = dir_ / "results";
  const auto refused = [&](const std::string& bench, const std::string& needle) {
    const auto before = listing(dir_);
    gpucal::test::expect_bad_input({{{"fit", "--bench", bench, "--gpu", "h100", "--out", results.string()}, needle}});
    EXPECT_EQ(listing(dir_), before);
    EXPECT_FALSE(fs::exists(results)) << "fit left the folder it created";
  };
  refused(write("negative.json", bench_with([](auto& r) { r["real_time"] = -5.0; })), "'real_time'");
  refused(write("zero.json", bench_with([](auto& r) { r["real_time"] = 0.0; })), "'real_time'");
  refused(write("unit.json", bench_with([](auto& r) { r["time_unit"] = "fortnights"; })), "'time_unit' is 'fortnights'");
  refused(write("label.json", bench_with([](auto& r) { r["label"] = 5; })), "'label'");
  refused(write("name.json", bench_with([](auto& r) { r["run_name"] = "bm_gemm/dtype:0/shape:x/m:abc"; })), "'run_name'");
  nlohmann::json memory = nlohmann::json::parse(bench_json(1.0));
  memory["context"]["total_memory_bytes"] = "-85031714816";
  refused(write("memory.json", memory.dump()), "'total_memory_bytes'");
  nlohmann::json driver = nlohmann::json::parse(bench_json(1.0));
  driver["context"]["driver_version"] = "../../escape";
  refused(write("driver.json", driver.dump()), "'driver_version'");
  refused(write("nothing.json", R"({"context": {}, "benchmarks": []})"), "no gpucal_bench results");
  gpucal::test::expect_bad_input({{{"fit", "--bench", write("ok.json", bench_json(1.0)), "--gpu", "h100", "--out", ""}, "--out"}});
}

// A second fit the same day never replaces the first; an unwritable --out
// leaves nothing; an export writes both of its files or neither.
TEST_F(calibration_cli, outputs_are_whole_and_never_replaced) {
  const std::string results = (dir_ / "results").string();
  const std::string bench = write("bench.json", bench_json(1.0));
  const std::string first = fit(bench, results);
  const std::string first_text = [&] {
    std::ifstream in(first);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }();
  const std::string second = fit(write("bench2.json", bench_json(1.1)), results);
  EXPECT_NE(first, second);
  EXPECT_TRUE(second.ends_with("-2.json")) << second;
  std::ifstream again(first);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(again), std::istreambuf_iterator<char>()), first_text);

  // --out through a regular file: no folder can be made there.
  const std::string blocker = write("blocker", "not a folder");
  const auto before = listing(dir_);
  gpucal::test::expect_bad_input({{{"fit", "--bench", bench, "--gpu", "h100", "--out", blocker}, "--out: cannot create folder"}});
  EXPECT_EQ(listing(dir_), before);

  // llm-analysis writes two files: when the second cannot be written, neither appears.
  const fs::path out = dir_ / "export";
  fs::create_directories(out / "h100-sxm-80gb.efficiencies.json");  // a folder where the second file goes
  gpucal::test::expect_bad_input({{{"export", "--format", "llm-analysis", first, "--out", out.string()}, "is a folder"}});
  EXPECT_FALSE(fs::exists(out / "h100-sxm-80gb.json"));
  gpucal::test::expect_bad_input({{{"export", "--format", "csv", first, "--out", ""}, "--out"}});
  for (const auto& e : fs::recursive_directory_iterator(dir_))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << "temporary file left: " << e.path();
}
