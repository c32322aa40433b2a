// Shared state and helpers of gpucal_bench: the device, its L2 size, NVML,
// CUDA-event timing, and the counters every benchmark reports.
#pragma once

#include <benchmark/benchmark.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <memory>
#include <string>

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

/// Reads the SM clock after a timed loop and records `sm_clock_mhz`,
/// `throttled` (0/1) and the NVML reason mask as counters.
void record_clocks(benchmark::State& state);

/// The timed loop every benchmark shares: each iteration times `inner`
/// launches between CUDA events and reports the time per launch; the clocks
/// are recorded after the loop. Warm up before calling.
template <typename Launch>
void run_timed(benchmark::State& state, int inner, Launch&& launch) {
  event_timer timer;
  for (auto _ : state) {
    timer.start();
    for (int i = 0; i < inner; ++i) launch(i);
    state.SetIterationTime(timer.stop() / inner);
  }
  record_clocks(state);
}

}  // namespace gpucal::bench
