// gpucal_bench: the GPU micro-benchmarks (bandwidth, cuBLASLt GEMMs) on
// Google Benchmark, with the GPU's identity, driver and clocks recorded in
// the benchmark context. All of Google Benchmark's flags apply, e.g.
//   gpucal_bench --benchmark_filter=bm_gemm --benchmark_repetitions=5
//       --benchmark_format=json --benchmark_out=results/h100-sxm-80gb/bench.json
// Every case runs a fixed number of timed iterations (bench_env.hpp), so
// `--benchmark_list_tests` shows each case with its iteration count; listing
// needs no GPU. Otherwise exits with code 3 and one line when no CUDA device
// is usable.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>

#include "bench_env.hpp"

namespace {

std::string opt(const std::optional<unsigned>& v) { return v ? std::to_string(*v) : "unknown"; }

void add_clock_context(const char* when) {
  const auto& n = gpucal::bench::env().nvml;
  if (!n || !n->available()) return;
  const auto c = n->read();
  const std::string p = std::string("clocks_") + when + "_";
  benchmark::AddCustomContext(p + "sm_mhz", opt(c.sm_mhz));
  benchmark::AddCustomContext(p + "mem_mhz", opt(c.mem_mhz));
  benchmark::AddCustomContext(p + "temperature_c", opt(c.temperature_c));
  benchmark::AddCustomContext(p + "throttled", c.throttled() ? "yes" : "no");
}

}  // namespace

// --gpucal_plan: the sweep's expected device time per family on an H200 SXM,
// from each case's launches, FLOPs and bytes (the numbers its body sizes its
// loop with). Datasheet figures (NVIDIA H200 Tensor Core GPU datasheet, 2024:
// dense BF16 989 TFLOP/s, FP8 and INT8 1,979, HBM3e 4.8 TB/s; 50 MiB L2 as
// cudaDeviceProp reports the GH100's); assumed: 70 % of peak compute, 80 % of
// HBM bandwidth, 5 us per launch at least, and per case 2 ms of set-up plus
// its buffers filled at 40 % of HBM bandwidth. An estimate to plan a device
// run with, not a measurement.
int print_plan() {
  const std::map<std::string, double> peak_tflops = {{"bf16", 989.0}, {"fp8", 1979.0}, {"int8", 1979.0}};
  const double hbm_gbps = 4800, compute_eff = 0.7, memory_eff = 0.8, launch_s = 5e-6, setup_s = 2e-3, fill_eff = 0.4;
  struct total {
    int cases = 0;
    double launches = 0, seconds = 0;
  };
  std::map<std::string, total> by_family;
  for (const auto& w : gpucal::bench::plan_sweep(50u << 20)) {
    const double compute = w.kind.empty() ? 0 : w.flops / (peak_tflops.at(w.kind) * 1e12 * compute_eff);
    const double memory = w.bytes / (hbm_gbps * 1e9 * memory_eff);
    const double per_launch = std::max({compute, memory, launch_s});
    total& t = by_family[w.family];
    ++t.cases;
    t.launches += w.launches;
    t.seconds += w.launches * per_launch + setup_s + w.setup_bytes / (hbm_gbps * 1e9 * fill_eff);
  }
  double all = 0;
  std::printf("%-28s %6s %10s %12s\n", "family", "cases", "launches", "expected s");
  for (const auto& [family, t] : by_family) {
    std::printf("%-28s %6d %10.0f %12.1f\n", family.c_str(), t.cases, t.launches, t.seconds);
    all += t.seconds;
  }
  std::printf("%-28s %6s %10s %12.1f  (H200 SXM estimate, %d timed iterations per case)\n", "total", "", "", all,
              gpucal::bench::timed_iterations);
  return 0;
}

// Whether the command line only asks for the case list.
bool list_only(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--benchmark_list_tests" || a == "--benchmark_list_tests=true" || a == "--benchmark_list_tests=1") return true;
  }
  return false;
}

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == "--gpucal_plan") return print_plan();
  if (list_only(argc, argv)) {  // the case list is built on the host: no CUDA call
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
  }
  try {
    std::string reason;
    const auto dev = gpucal::kernels::first_device(&reason);
    if (!dev) {
      std::fprintf(stderr, "gpucal_bench: %s\n", reason.c_str());
      return 3;
    }
    auto& e = gpucal::bench::env();
    e.device = *dev;
    cudaDeviceProp prop{};
    GPUCAL_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    e.l2_bytes = static_cast<std::size_t>(prop.l2CacheSize);
    char bus[32] = {};
    GPUCAL_CUDA_CHECK(cudaDeviceGetPCIBusId(bus, sizeof bus, 0));
    e.nvml = std::make_unique<gpucal::calibrate::nvml>(bus);

    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
    benchmark::AddCustomContext("gpu_name", dev->name);
    benchmark::AddCustomContext("compute_capability", std::to_string(dev->cc_major) + "." + std::to_string(dev->cc_minor));
    benchmark::AddCustomContext("sm_count", std::to_string(dev->sm_count));
    benchmark::AddCustomContext("l2_bytes", std::to_string(e.l2_bytes));
    benchmark::AddCustomContext("total_memory_bytes", std::to_string(dev->total_memory_bytes));
    benchmark::AddCustomContext("cuda_driver_api", std::to_string(dev->driver_version));
    benchmark::AddCustomContext("cuda_runtime", std::to_string(dev->runtime_version));
    benchmark::AddCustomContext("nvml", e.nvml->available() ? "loaded" : e.nvml->why());
    if (e.nvml->available()) {
      benchmark::AddCustomContext("driver_version", e.nvml->driver_version());
      const auto c = e.nvml->read();
      benchmark::AddCustomContext("sm_max_mhz", opt(c.sm_max_mhz));
      benchmark::AddCustomContext("sm_default_mhz", opt(c.sm_default_mhz));
      benchmark::AddCustomContext("power_limit_w", opt(c.power_limit_w));
    }
    add_clock_context("start");
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "gpucal_bench: %s\n", ex.what());
    return 1;
  }
}
