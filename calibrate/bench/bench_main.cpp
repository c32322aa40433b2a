// gpucal_bench: the GPU micro-benchmarks (bandwidth, cuBLASLt GEMMs) on
// Google Benchmark, with the GPU's identity, driver and clocks recorded in
// the benchmark context. All of Google Benchmark's flags apply, e.g.
//   gpucal_bench --benchmark_filter=bm_gemm --benchmark_repetitions=5
//       --benchmark_format=json --benchmark_out=results/h100-sxm-80gb/bench.json
// Exits with code 3 and one line when no CUDA device is usable.
#include <benchmark/benchmark.h>

#include <cstdio>
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

int main(int argc, char** argv) {
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
