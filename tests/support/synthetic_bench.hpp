// A synthetic gpucal_bench result for tests and fuzz seeds: made-up times
// that follow the GEMM model exactly, never a measurement.
#pragma once

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <vector>

namespace gpucal::test {

// A gpucal_bench result in Google Benchmark's JSON format: bf16 GEMMs over
// three shapes and five M, three repetitions each, plus 4 GiB copies and
// causal prefill attention at 45 % of the bf16 peak (chunks of 4096 and 8192;
// the 1024 chunk at 20 % is below the fit's 4096 threshold).
// `slowdown` scales every GEMM time.
inline std::string bench_json(double slowdown) {
  nlohmann::json j;
  j["context"] = {{"gpu_name", "NVIDIA H100 80GB HBM3"}, {"compute_capability", "9.0"}, {"sm_count", "132"},
                  {"total_memory_bytes", "85031714816"}, {"driver_version", "580.159.04"}, {"cuda_runtime", "13000"},
                  {"clocks_start_sm_mhz", "1980"}};
  nlohmann::json runs = nlohmann::json::array();
  const std::vector<std::tuple<int, int, const char*>> shapes{{6144, 4096, "llama3-8b.qkv"}, {28672, 4096, "llama3-8b.gate_up"},
                                                              {8192, 8192, "square.8192"}};
  int shape_index = 0;
  for (const auto& [n, k, name] : shapes) {
    for (int m : {1, 16, 256, 4096, 8192}) {
      const double bytes = (double(m) * k + double(n) * k) * 2 + double(m) * n * 2, flops = 2.0 * m * n * k;
      const double eff = m >= 256 ? 0.75 : m >= 16 ? 0.2 : 0.012;
      const double t = (4 + bytes / (3350e9 * 0.8) * 1e6 + flops / (989.4e12 * eff) * 1e6) * slowdown;
      for (int rep = 0; rep < 3; ++rep)
        runs.push_back({{"name", fmt::format("bm_gemm/dtype:0/shape:{}/m:{}/manual_time", shape_index, m)},
                        {"run_name", fmt::format("bm_gemm/dtype:0/shape:{}/m:{}/manual_time", shape_index, m)},
                        {"run_type", "iteration"}, {"repetition_index", rep}, {"real_time", t * (1 + 0.002 * (rep - 1))},
                        {"time_unit", "us"}, {"label", std::string("bf16 ") + name}, {"m", m}, {"n", n}, {"k", k}});
    }
    ++shape_index;
  }
  for (int rep = 0; rep < 3; ++rep)
    runs.push_back({{"name", "bm_bandwidth/op:2/bytes:4294967296/manual_time"},
                    {"run_name", "bm_bandwidth/op:2/bytes:4294967296/manual_time"}, {"run_type", "iteration"},
                    {"real_time", 2900.0 + rep}, {"time_unit", "us"}, {"label", "copy"},
                    {"GB/s", 2.0 * 4294967296 / 1e9 / ((2900.0 + rep) * 1e-6)}});
  for (const auto& [chunk, eff] : std::vector<std::pair<int, double>>{{1024, 0.2}, {4096, 0.45}, {8192, 0.45}}) {
    const double flops = 4.0 * 128 * (double(chunk) * (chunk + 1) / 2) * 32;
    const std::string name = fmt::format("bm_prefill_attention/prefix:0/chunk:{}/fp8:0/manual_time", chunk);
    for (int rep = 0; rep < 3; ++rep)
      runs.push_back({{"name", name}, {"run_name", name}, {"run_type", "iteration"},
                      {"real_time", flops / (989.4e12 * eff) * 1e6 * (1 + 0.002 * (rep - 1))}, {"time_unit", "us"},
                      {"label", "bf16 KV"}, {"flops", flops}});
  }
  runs.push_back({{"name", "bm_gemm/dtype:0/shape:0/m:1/manual_time_mean"}, {"run_name", "bm_gemm/dtype:0/shape:0/m:1/manual_time"},
                  {"run_type", "aggregate"}, {"real_time", 1.0}, {"time_unit", "us"}});  // aggregates are skipped
  j["benchmarks"] = runs;
  return j.dump(2);
}

}  // namespace gpucal::test
