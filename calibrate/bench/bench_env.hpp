// Shared state and helpers of gpucal_bench: the device, its L2 size, NVML,
// CUDA-event timing, and the counters every benchmark reports.
#pragma once

#include <benchmark/benchmark.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "../nvml.hpp"
#include "gpucal/kernels/cuda_check.hpp"
#include "gpucal/kernels/device_query.hpp"

namespace gpucal::bench {

struct environment {
  kernels::device_info device;
  std::size_t l2_bytes = 0;
  std::unique_ptr<calibrate::nvml> nvml;
};

/// Set up once by main before any benchmark runs.
environment& env();

/// A start/stop CUDA event pair (move-only RAII); elapsed in seconds.
class event_timer {
public:
  event_timer();
  ~event_timer();
  event_timer(const event_timer&) = delete;
  event_timer& operator=(const event_timer&) = delete;
  void start(cudaStream_t s = nullptr);
  /// Records the stop event, waits for it, returns seconds since start.
  double stop(cudaStream_t s = nullptr);

private:
  cudaEvent_t begin_ = nullptr, end_ = nullptr;
};

/// How many copies of a working set of `bytes` to rotate through so that
/// consecutive runs do not find their inputs in L2: enough for 3 x L2 in
/// total, at most `cap`.
int rotation_sets(double bytes, int cap = 64);

/// Timed iterations of every case, fixed at registration (Iterations), so
/// Google Benchmark never ramps up by min-time and a family's device time
/// follows from its case list: iterations x inner launches per case.
inline constexpr int timed_iterations = 5;
/// Launches before the timed loop (first-call costs, clocks ramping up).
inline constexpr int warmup_launches = 3;

/// NVML readings taken after every timed iteration: the lowest SM clock, the
/// highest temperature and every clocks-event reason seen during the loop.
class clock_watch {
public:
  void sample();
  /// Records `sm_clock_mhz` (lowest), `temperature_c` (highest), `throttled`
  /// (1 when a thermal, hardware-slowdown or power-brake reason was seen),
  /// `power_capped` (1 when the software power cap was) and
  /// `clock_event_reasons` (all reasons seen, OR-ed) as counters.
  void record(benchmark::State& state) const;

private:
  std::optional<unsigned> min_sm_mhz_, max_temperature_c_;
  std::uint64_t reasons_ = 0;
  bool throttled_ = false, power_capped_ = false, any_ = false;
};

/// The timed loop every benchmark shares: each iteration times `inner`
/// launches with one CUDA event pair and reports the time per launch; NVML
/// is read after each iteration, outside the timed region. Warm up before
/// calling.
template <typename Launch>
void run_timed(benchmark::State& state, int inner, Launch&& launch) {
  event_timer timer;
  clock_watch clocks;
  for (auto _ : state) {
    timer.start();
    for (int i = 0; i < inner; ++i) launch(i);
    state.SetIterationTime(timer.stop() / inner);
    clocks.sample();
  }
  clocks.record(state);
  state.counters["inner_launches"] = inner;
}

/// Runs one benchmark body so that a failure costs one row: every CUDA and
/// cuBLASLt check throws, and the exception becomes SkipWithError with its
/// reason instead of ending the process and losing the JSON of every case.
template <typename Body>
void guarded(benchmark::State& state, Body&& body) {
  try {
    body(state);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

/// Registers `body` as benchmark `name` run through guarded(), with a fixed
/// number of timed iterations and manual (CUDA event) time in microseconds.
benchmark::internal::Benchmark* register_case(const char* name, void (*body)(benchmark::State&));

// ---- the sweep's cost, known before it runs (gpucal_bench --gpucal_plan) ----

/// The device work of one case, from its arguments alone: the same numbers
/// its benchmark body uses to size its loop.
struct case_work {
  std::string family;        ///< e.g. "bm_gemm"
  std::string kind;          ///< peak it is bound by when compute-bound: "bf16", "fp8", "int8"; "" = memory only
  double launches = 0;       ///< warm-up and timed launches
  double flops = 0;          ///< per launch
  double bytes = 0;          ///< per launch, DRAM or L2
  double setup_bytes = 0;    ///< device memory allocated and filled before the loop
};
using planner = void (*)(std::vector<case_work>& out);
/// Adds a family's planner (at static initialization, beside its registration).
int register_planner(planner p);
/// Every planner's cases, with rotation sets sized for an L2 of `l2_bytes`.
std::vector<case_work> plan_sweep(std::size_t l2_bytes);

}  // namespace gpucal::bench
