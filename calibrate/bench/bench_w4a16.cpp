// W4A16 against cuBLASLt BF16 at the same shapes: the 4096 x 14336 and
// 14336 x 4096 layers of the targets, plus Llama-3-8B's gate|up, for
// M = 1..256. Each W4A16 case also reports `speedup_vs_bf16` from a BF16
// run of the same shape timed right before it. bm_w4a16_v2 runs kernel
// version 2 (16 activation rows per weight pass) on the same cases, and
// bm_w4a16_v3 version 3 (tensor cores, reordered tiles, K split across CTAs
// at small M; random codes read as either layout cost the same).
//   gpucal_bench --benchmark_filter=bm_w4a16
#include <algorithm>
#include <iterator>
#include <vector>

#include "bench_env.hpp"
#include "gpucal/kernels/bandwidth.hpp"
#include "gpucal/kernels/device_buffer.hpp"
#include "gpucal/kernels/gemm_reference.hpp"
#include "gpucal/kernels/lt_gemm.hpp"
#include "gpucal/kernels/w4a16_gemm.hpp"
#include "gpucal/kernels/w4a16_layout.hpp"

namespace gpucal::bench {

namespace {

struct nk {
  int n, k;
};
const nk shapes[] = {{4096, 14336}, {14336, 4096}, {28672, 4096}};
constexpr int batch_rows[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};  // M of every shape, for the arguments and the plan

// Median of `reps` timed regions of `inner` launches each.
template <typename Launch>
double median_time_s(Launch&& launch, int inner, int reps = timed_iterations) {
  event_timer timer;
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    timer.start();
    for (int i = 0; i < inner; ++i) launch(i);
    t.push_back(timer.stop() / inner);
  }
  std::nth_element(t.begin(), t.begin() + reps / 2, t.end());
  return t[static_cast<std::size_t>(reps / 2)];
}

constexpr int group = 128;

// Rotation over >= 3 x L2 (both formats, like the GEMM sweep: 5x, the bf16
// copy of the same rotation being 4x larger), launches per timed region, and
// the bytes one W4A16 launch reads: each weight row once per 8 activation
// rows in version 1 (m_tile in w4a16_gemm.cu), once per 16 in version 2,
// once per 16 x m_tiles in version 3 (plus its FP32 partials written and
// read back when K is split, counted here for 132 SMs, an H100/H200),
// packed codes, bf16 scales and zero bytes.
struct w4_sizing {
  int sets, inner, weight_passes;
  double w4_bytes, bytes;
  w4_sizing(const nk& s, int m, int version)
      : sets(rotation_sets(static_cast<double>(s.n) * s.k / 2 * 5)),
        inner(std::max(sets, 20)),
        weight_passes(passes(s, m, version)),
        w4_bytes(static_cast<double>(s.n) * s.k / 2),
        bytes((w4_bytes + static_cast<double>(s.n) * (s.k / group) * 3) * weight_passes +
              static_cast<double>(m) * (s.k + s.n) * 2 + (version == 3 ? 2.0 * static_cast<double>(v3_grid(s, m).workspace_bytes(m, s.n)) : 0.0)) {}
  static kernels::w4a16_grid v3_grid(const nk& s, int m) { return kernels::choose_w4a16_grid(m, s.n, s.k, 132); }
  static int passes(const nk& s, int m, int version) {
    if (version == 1) return (m + 7) / 8;
    if (version == 2) return (m + 15) / 16;
    return v3_grid(s, m).ctas_m;
  }
};

void w4a16_case(benchmark::State& state, int version) {
  const nk s = shapes[state.range(0)];
  const int m = static_cast<int>(state.range(1));
  const int groups = s.k / group;
  const w4_sizing z(s, m, version);
  const int sets = z.sets;
  std::vector<kernels::device_buffer<std::uint32_t>> packed;
  std::vector<kernels::device_buffer<std::uint16_t>> scales, bf16_w;
  std::vector<kernels::device_buffer<std::uint8_t>> zeros;
  for (int i = 0; i < sets; ++i) {
    packed.emplace_back(static_cast<std::size_t>(s.n) * s.k / 8);
    scales.emplace_back(static_cast<std::size_t>(s.n) * groups);
    zeros.emplace_back(static_cast<std::size_t>(s.n) * groups);
    bf16_w.emplace_back(static_cast<std::size_t>(s.n) * s.k);
    kernels::fill_random_bytes(packed.back().data(), packed.back().bytes(), 10 + static_cast<std::uint64_t>(i), nullptr);
    kernels::fill_random_bf16(scales.back().data(), scales.back().size(), 0.001f, 0.01f, 20 + static_cast<std::uint64_t>(i), nullptr);
    GPUCAL_CUDA_CHECK(cudaMemset(zeros.back().data(), 8, zeros.back().bytes()));
    kernels::fill_random_bf16(bf16_w.back().data(), bf16_w.back().size(), -0.05f, 0.05f, 30 + static_cast<std::uint64_t>(i), nullptr);
  }
  kernels::device_buffer<std::uint16_t> x(static_cast<std::size_t>(m) * s.k), d(static_cast<std::size_t>(m) * s.n);
  kernels::fill_random_bf16(x.data(), x.size(), -1, 1, 5, nullptr);
  const std::size_t ws_bytes = version == 3 ? kernels::w4a16_gemm_v3_workspace_bytes(m, s.n, s.k, group) : 0;
  kernels::device_buffer<std::uint8_t> ws(std::max<std::size_t>(ws_bytes, 1));

  static kernels::lt_context ctx;
  std::string reason;
  const auto plan = kernels::lt_gemm_plan::create(ctx, kernels::gemm_dtype::bf16, {m, s.n, s.k}, &reason);
  if (!plan) {
    state.SkipWithError(reason.c_str());
    return;
  }
  const auto w4 = [&](int i) {
    const auto j = static_cast<std::size_t>(i % sets);
    if (version == 3) {
      kernels::w4a16_gemm_v3(x.data(), packed[j].data(), scales[j].data(), zeros[j].data(), d.data(), m, s.n, s.k, group, ws.data(),
                             ws_bytes, nullptr);
      return;
    }
    (version == 1 ? kernels::w4a16_gemm : kernels::w4a16_gemm_v2)(x.data(), packed[j].data(), scales[j].data(), zeros[j].data(),
                                                                   d.data(), m, s.n, s.k, group, nullptr);
  };
  const auto bf16 = [&](int i) {
    const auto j = static_cast<std::size_t>(i % sets);
    plan->run(ctx, x.data(), bf16_w[j].data(), d.data(), nullptr, nullptr, nullptr);
  };
  const int inner = z.inner;
  for (int i = 0; i < sets + warmup_launches; ++i) {
    w4(i);
    bf16(i);
  }
  const double bf16_s = median_time_s(bf16, inner);
  run_timed(state, inner, w4);
  state.counters["GB/s"] = benchmark::Counter(z.bytes / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["weight_passes"] = z.weight_passes;
  state.counters["TFLOP/s"] = benchmark::Counter(kernels::gemm_flops(m, s.n, s.k) / 1e12, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["bf16_us"] = bf16_s * 1e6;
  // speedup = bf16 time / w4a16 time; Google Benchmark's iteration time is the w4a16 time.
  state.counters["speedup_vs_bf16"] = benchmark::Counter(bf16_s, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::to_string(s.n) + "x" + std::to_string(s.k));
}

void bm_w4a16_body(benchmark::State& state) { w4a16_case(state, 1); }
void bm_w4a16_v2_body(benchmark::State& state) { w4a16_case(state, 2); }
void bm_w4a16_v3_body(benchmark::State& state) { w4a16_case(state, 3); }

void w4a16_args(benchmark::internal::Benchmark* b) {
  for (std::int64_t shape = 0; shape < static_cast<std::int64_t>(std::size(shapes)); ++shape)
    for (const int m : batch_rows) b->Args({shape, m});
}

}  // namespace

// Per case: the BF16 reference and the W4A16 runs, each warmed up and timed.
void plan_w4a16(std::vector<case_work>& out) {
  for (const int version : {1, 2, 3})
  for (const nk& s : shapes)
    for (const int m : batch_rows) {
      const w4_sizing z(s, m, version);
      const double launches = z.sets + warmup_launches + timed_iterations * z.inner;
      const double setup = z.sets * (z.w4_bytes * 5 + static_cast<double>(s.n) * (s.k / group) * 3);
      const std::string family = version == 1 ? "bm_w4a16" : "bm_w4a16_v" + std::to_string(version);
      out.push_back({family, "bf16", launches, kernels::gemm_flops(m, s.n, s.k), z.bytes, setup});
      out.push_back({family + " (bf16 reference)", "bf16", launches, kernels::gemm_flops(m, s.n, s.k), static_cast<double>(s.n) * s.k * 2, 0});
    }
}

const auto* const registered = register_case("bm_w4a16", bm_w4a16_body)->Apply(w4a16_args)->ArgNames({"shape", "m"});
const auto* const registered_v2 = register_case("bm_w4a16_v2", bm_w4a16_v2_body)->Apply(w4a16_args)->ArgNames({"shape", "m"});
const auto* const registered_v3 = register_case("bm_w4a16_v3", bm_w4a16_v3_body)->Apply(w4a16_args)->ArgNames({"shape", "m"});
const int planned = register_planner(plan_w4a16);

}  // namespace gpucal::bench
