// gpucal_model_bench: CPU benchmarks of the analytical model. The planner's
// full search over the GPU catalog for one model should take well under
// 100 ms; the single-step figures show where that time goes.
//   build/model/gpucal_model_bench --benchmark_filter=plan
#include <benchmark/benchmark.h>

#include "gpucal/model/catalog.hpp"
#include "gpucal/model/memory_model.hpp"
#include "gpucal/model/planner.hpp"
#include "gpucal/model/throughput_model.hpp"

namespace gm = gpucal::model;

namespace {

// The seed's case over the whole GPU catalog: 13 SKUs x 4 tp x up to 4 weight
// formats x 2 KV dtypes, each with a replica search.
void bm_plan_full_catalog(benchmark::State& state) {
  const gm::model_spec m = gm::resolve_model("llama-3-70b");
  const gm::coefficients c = gm::default_coefficients();
  const gm::workload w{50, 1000, 500, 2.0, 0.1};
  int candidates = 0;
  for (auto _ : state) {
    const gm::plan_result r = gm::plan_deployment(m, w, {}, c);
    candidates = r.candidates;
    benchmark::DoNotOptimize(r.plans.data());
  }
  state.counters["candidates"] = candidates;
  state.SetLabel("llama-3-70b, 50 req/s, 1000/500 tokens");
}
BENCHMARK(bm_plan_full_catalog)->Unit(benchmark::kMillisecond);

void bm_estimate_memory(benchmark::State& state) {
  const gm::model_spec m = gm::resolve_model("deepseek-v3");
  const gm::gpu_spec& gpu = gm::resolve_gpu("h200");
  const gm::engine_profile engine = gm::resolve_engine("vllm");
  const gm::coefficients c = gm::default_coefficients();
  gm::estimate_options o;
  o.tp = 8;
  for (auto _ : state) benchmark::DoNotOptimize(gm::estimate_memory(m, gpu, engine, c, o).num_blocks);
}
BENCHMARK(bm_estimate_memory)->Unit(benchmark::kMicrosecond);

void bm_decode_step(benchmark::State& state) {
  const gm::model_spec m = gm::resolve_model("llama-3-70b");
  const gm::gpu_spec& gpu = gm::resolve_gpu("h100-sxm");
  const gm::engine_profile engine = gm::resolve_engine("vllm");
  const gm::coefficients c = gm::default_coefficients();
  gm::estimate_options o;
  o.tp = 4;
  const gm::resolved_settings s = gm::resolve_settings(m, gpu, engine, o, gpu.memory_bytes);
  const gm::throughput_model perf(m, gpu, s, c.throughput, engine);
  for (auto _ : state) benchmark::DoNotOptimize(perf.decode_step(64, 1250).total_s);
}
BENCHMARK(bm_decode_step)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
