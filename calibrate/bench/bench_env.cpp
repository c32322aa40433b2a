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

void record_clocks(benchmark::State& state) {
  const auto& n = env().nvml;
  if (!n || !n->available()) return;
  const calibrate::gpu_clocks c = n->read();
  if (c.sm_mhz) state.counters["sm_clock_mhz"] = *c.sm_mhz;
  state.counters["throttled"] = c.throttled() ? 1 : 0;
  if (c.throttle_reasons) state.counters["clock_event_reasons"] = static_cast<double>(*c.throttle_reasons);
}

}  // namespace gpucal::bench
