// GEMM sweep through cuBLASLt: BF16, FP8 e4m3 (per-tensor scales, BF16 out)
// and INT8 -> INT32, M (tokens) 1..16384 against the N x K of real layers and
// square 8192. Inputs are random on the device and rotated across enough
// copies that a run does not find them in L2. TFLOP/s counts 2 M N K;
// GB/s counts each operand read once and the output written once.
//   gpucal_bench --benchmark_filter='bm_gemm/dtype:0'
#include <vector>

#include "bench_env.hpp"
#include "gpucal/kernels/bandwidth.hpp"
#include "gpucal/kernels/device_buffer.hpp"
#include "gpucal/kernels/gemm_reference.hpp"
#include "gpucal/kernels/lt_gemm.hpp"

namespace gpucal::bench {

namespace {

using kernels::gemm_dtype;

const char* const kind_of[] = {"bf16", "fp8", "int8"};  // gemm_dtype 0, 1, 2

// A case's sizes: rotation sets over >= 3 x L2, launches per timed region
// (at least one pass over the rotation, up to 50 for tiny GEMMs so event
// resolution and launch gaps stay small), work per launch.
struct gemm_sizing {
  double in_bytes, set_bytes, flops, bytes;
  int sets, inner;
  gemm_sizing(gemm_dtype dtype, std::int64_t m, std::int64_t n, std::int64_t k)
      : in_bytes(kernels::gemm_input_bytes(dtype)),
        set_bytes(static_cast<double>(m * k + n * k) * in_bytes),
        flops(kernels::gemm_flops(m, n, k)),
        bytes(kernels::gemm_min_bytes(m, n, k, in_bytes, in_bytes, kernels::gemm_output_bytes(dtype))),
        sets(rotation_sets(set_bytes)),
        inner(std::max(sets, static_cast<int>(std::min(50.0, 2e11 / std::max(flops, 1.0))))) {}
};

void bm_gemm_body(benchmark::State& state) {
  const auto dtype = static_cast<gemm_dtype>(state.range(0));
  const auto& shape = kernels::llm_layer_shapes().at(static_cast<std::size_t>(state.range(1)));
  const std::int64_t m = state.range(2), n = shape.n, k = shape.k;
  state.SetLabel(std::string(kernels::gemm_dtype_name(dtype)) + " " + shape.name);

  static kernels::lt_context ctx;  // one handle and workspace for the whole run
  std::string reason;
  const auto plan = kernels::lt_gemm_plan::create(ctx, dtype, {m, n, k}, &reason, /*fast_accumulation=*/true);
  if (!plan) {
    state.SkipWithError(reason.c_str());
    return;
  }
  const gemm_sizing z(dtype, m, n, k);
  const double in_bytes = z.in_bytes;
  const int sets = z.sets;
  std::vector<kernels::device_buffer<std::uint8_t>> xs, ws;
  for (int i = 0; i < sets; ++i) {
    xs.emplace_back(static_cast<std::size_t>(static_cast<double>(m * k) * in_bytes));
    ws.emplace_back(static_cast<std::size_t>(static_cast<double>(n * k) * in_bytes));
    const auto seed = static_cast<std::uint64_t>(i) * 2 + 1;
    if (dtype == gemm_dtype::bf16) {
      kernels::fill_random_bf16(xs.back().data(), static_cast<std::size_t>(m * k), -1, 1, seed, nullptr);
      kernels::fill_random_bf16(ws.back().data(), static_cast<std::size_t>(n * k), -1, 1, seed + 1, nullptr);
    } else if (dtype == gemm_dtype::fp8_e4m3) {
      kernels::fill_random_fp8_e4m3(xs.back().data(), static_cast<std::size_t>(m * k), -2, 2, seed, nullptr);
      kernels::fill_random_fp8_e4m3(ws.back().data(), static_cast<std::size_t>(n * k), -2, 2, seed + 1, nullptr);
    } else {
      kernels::fill_random_int8(xs.back().data(), static_cast<std::size_t>(m * k), seed, nullptr);
      kernels::fill_random_int8(ws.back().data(), static_cast<std::size_t>(n * k), seed + 1, nullptr);
    }
  }
  kernels::device_buffer<std::uint8_t> d(
      static_cast<std::size_t>(static_cast<double>(m * n) * kernels::gemm_output_bytes(dtype)));
  kernels::device_buffer<float> scales(2);
  kernels::fill_random_f32(scales.data(), 2, 0.5f, 1.0f, 11, nullptr);

  int next = 0;
  const auto launch = [&] {
    plan->run(ctx, xs[static_cast<std::size_t>(next)].data(), ws[static_cast<std::size_t>(next)].data(), d.data(),
              scales.data(), scales.data() + 1, nullptr);
    next = (next + 1) % sets;
  };
  for (int i = 0; i < sets + warmup_launches; ++i) launch();  // warm-up: first-call costs stay out
  run_timed(state, z.inner, [&](int) { launch(); });
  state.counters["TFLOP/s"] = benchmark::Counter(z.flops / 1e12, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GB/s"] = benchmark::Counter(z.bytes / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["rotation_sets"] = sets;
  // The shape travels with the result, for the fitter (gpucal fit).
  state.counters["m"] = static_cast<double>(m);
  state.counters["n"] = static_cast<double>(n);
  state.counters["k"] = static_cast<double>(k);
}

void gemm_args(benchmark::internal::Benchmark* b) {
  const auto shapes = static_cast<std::int64_t>(kernels::llm_layer_shapes().size());
  for (std::int64_t dtype = 0; dtype < 3; ++dtype)
    for (std::int64_t s = 0; s < shapes; ++s)
      for (std::int64_t m : kernels::token_sweep()) b->Args({dtype, s, m});
}

}  // namespace

void plan_gemm(std::vector<case_work>& out) {
  for (int dtype = 0; dtype < 3; ++dtype)
    for (const auto& shape : kernels::llm_layer_shapes())
      for (std::int64_t m : kernels::token_sweep()) {
        const gemm_sizing z(static_cast<gemm_dtype>(dtype), m, shape.n, shape.k);
        out.push_back({"bm_gemm", kind_of[dtype], static_cast<double>(z.sets + warmup_launches + timed_iterations * z.inner),
                       z.flops, z.bytes,
                       z.sets * z.set_bytes + static_cast<double>(m * shape.n) * kernels::gemm_output_bytes(static_cast<gemm_dtype>(dtype))});
      }
}

const auto* const registered = register_case("bm_gemm", bm_gemm_body)->Apply(gemm_args)->ArgNames({"dtype", "shape", "m"});
const int planned = register_planner(plan_gemm);

}  // namespace gpucal::bench
