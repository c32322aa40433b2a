// bench_env.hpp implementation.
#include "bench_env.hpp"

#include <cmath>

namespace gpucal::bench {

environment& env() {
  static environment e;
  return e;
}

event_timer::event_timer() {
  GPUCAL_CUDA_CHECK(cudaEventCreate(&begin_));
  GPUCAL_CUDA_CHECK(cudaEventCreate(&end_));
}
event_timer::~event_timer() {
  if (begin_) GPUCAL_CUDA_CHECK_NOTHROW(cudaEventDestroy(begin_));
  if (end_) GPUCAL_CUDA_CHECK_NOTHROW(cudaEventDestroy(end_));
}
void event_timer::start(cudaStream_t s) { GPUCAL_CUDA_CHECK(cudaEventRecord(begin_, s)); }
double event_timer::stop(cudaStream_t s) {
  GPUCAL_CUDA_CHECK(cudaEventRecord(end_, s));
  GPUCAL_CUDA_CHECK(cudaEventSynchronize(end_));
  float ms = 0;
  GPUCAL_CUDA_CHECK(cudaEventElapsedTime(&ms, begin_, end_));
  return ms * 1e-3;
}

int rotation_sets(double bytes, int cap) {
  const double target = 3.0 * static_cast<double>(env().l2_bytes);
  const int sets = static_cast<int>(std::ceil(target / std::max(bytes, 1.0)));
  return std::max(1, std::min(sets, cap));
}

void clock_watch::sample() {
  const auto& n = env().nvml;
  if (!n || !n->available()) return;
  const calibrate::gpu_clocks c = n->read();
  any_ = true;
  if (c.sm_mhz && (!min_sm_mhz_ || *c.sm_mhz < *min_sm_mhz_)) min_sm_mhz_ = c.sm_mhz;
  if (c.temperature_c && (!max_temperature_c_ || *c.temperature_c > *max_temperature_c_)) max_temperature_c_ = c.temperature_c;
  if (c.throttle_reasons) reasons_ |= *c.throttle_reasons;
  throttled_ = throttled_ || c.throttled();
  power_capped_ = power_capped_ || c.power_capped();
}

void clock_watch::record(benchmark::State& state) const {
  if (!any_) return;
  if (min_sm_mhz_) state.counters["sm_clock_mhz"] = *min_sm_mhz_;
  if (max_temperature_c_) state.counters["temperature_c"] = *max_temperature_c_;
  state.counters["throttled"] = throttled_ ? 1 : 0;
  state.counters["power_capped"] = power_capped_ ? 1 : 0;
  state.counters["clock_event_reasons"] = static_cast<double>(reasons_);
}

namespace {
std::vector<planner>& planners() {
  static std::vector<planner> p;
  return p;
}
}  // namespace

int register_planner(planner p) {
  planners().push_back(p);
  return static_cast<int>(planners().size());
}

std::vector<case_work> plan_sweep(std::size_t l2_bytes) {
  env().l2_bytes = l2_bytes;
  std::vector<case_work> out;
  for (const planner p : planners()) p(out);
  return out;
}

benchmark::internal::Benchmark* register_case(const char* name, void (*body)(benchmark::State&)) {
  return benchmark::RegisterBenchmark(name, [body](benchmark::State& state) { guarded(state, body); })
      ->Iterations(timed_iterations)
      ->UseManualTime()
      ->Unit(benchmark::kMicrosecond);
}

}  // namespace gpucal::bench
