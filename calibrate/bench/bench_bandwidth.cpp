// Bandwidth sweep: read, write, copy and triad from well inside L2 (1 MiB)
// to 4 GiB per operand, so the L2 and HBM plateaus both show. GB/s counts
// bytes read plus bytes written (copy: 2 x size; triad: 3 x size). Up to
// 64 MiB, read and copy also run as v2 (labels "read.v2", "copy.v2"): the
// timed region is one launch of as many L2 sweeps as v1 makes launches, so
// the two measure the same bytes and the L2 plateau shows without launch gaps.
//   gpucal_bench --benchmark_filter=bm_bandwidth
#include <algorithm>

#include "bench_env.hpp"
#include "gpucal/kernels/bandwidth.hpp"
#include "gpucal/kernels/device_buffer.hpp"
#include "gpucal/kernels/device_query.hpp"

namespace gpucal::bench {

namespace {

using kernels::bandwidth_op;

int operands_of(bandwidth_op op) { return op == bandwidth_op::triad ? 3 : (op == bandwidth_op::copy ? 2 : 1); }

// Small sizes run many launches per timed region so launch gaps stay small
// next to the transfer: about 256 MiB moved per region.
int inner_for(std::size_t bytes) { return static_cast<int>(std::clamp<std::size_t>((256u << 20) / bytes, 1, 1000)); }

void bm_bandwidth_body(benchmark::State& state) {
  const auto op = static_cast<bandwidth_op>(state.range(0));
  const auto bytes = static_cast<std::size_t>(state.range(1));
  const bool v2 = state.range(2) == 2;
  const int operands = operands_of(op);
  if (static_cast<double>(bytes) * operands > 0.8 * static_cast<double>(kernels::free_device_bytes())) {
    state.SkipWithError("not enough free device memory for this size");
    return;
  }
  const int grid = kernels::bandwidth_grid(env().device.sm_count);
  kernels::device_buffer<std::uint8_t> a(bytes), b(op == bandwidth_op::read || op == bandwidth_op::write ? 0 : bytes),
      c(op == bandwidth_op::triad ? bytes : 0);
  kernels::device_buffer<std::uint32_t> sums(static_cast<std::size_t>(grid));
  for (auto* buf : {&a, &b, &c})
    if (buf->size()) kernels::fill_random_bytes(buf->data(), buf->bytes(), 7 + buf->size(), nullptr);
  if (op == bandwidth_op::triad) {  // finite floats: random bytes could be NaN/denormal-heavy
    kernels::fill_random_f32(reinterpret_cast<float*>(b.data()), bytes / 4, -1, 1, 3, nullptr);
    kernels::fill_random_f32(reinterpret_cast<float*>(c.data()), bytes / 4, -1, 1, 4, nullptr);
  }
  const int inner = inner_for(bytes);
  if (v2) {
    const auto sweeps = [&] {
      if (op == bandwidth_op::read) kernels::bandwidth_read_v2(a.data(), bytes, inner, sums.data(), grid, nullptr);
      else kernels::bandwidth_copy_v2(a.data(), b.data(), bytes, inner, grid, nullptr);
    };
    for (int i = 0; i < warmup_launches; ++i) sweeps();
    run_timed(state, 1, [&](int) { sweeps(); });
    state.counters["passes"] = inner;
    state.counters["bytes"] = static_cast<double>(bytes);
    state.counters["GB/s"] = benchmark::Counter(kernels::bandwidth_bytes_moved(op, bytes) * inner / 1e9,
                                                benchmark::Counter::kIsIterationInvariantRate);
    state.SetLabel(std::string(kernels::bandwidth_op_name(op)) + ".v2");
    return;
  }
  const auto launch = [&] {
    switch (op) {
      case bandwidth_op::read: kernels::bandwidth_read(a.data(), bytes, sums.data(), grid, nullptr); break;
      case bandwidth_op::write: kernels::bandwidth_write(a.data(), bytes, 0x5A5A5A5Au, grid, nullptr); break;
      case bandwidth_op::copy: kernels::bandwidth_copy(a.data(), b.data(), bytes, grid, nullptr); break;
      case bandwidth_op::triad:
        kernels::bandwidth_triad(reinterpret_cast<float*>(a.data()), reinterpret_cast<const float*>(b.data()),
                                 reinterpret_cast<const float*>(c.data()), 0.5f, bytes / 4, grid, nullptr);
        break;
    }
  };
  for (int i = 0; i < warmup_launches; ++i) launch();
  run_timed(state, inner, [&](int) { launch(); });
  state.counters["bytes"] = static_cast<double>(bytes);
  state.counters["GB/s"] = benchmark::Counter(kernels::bandwidth_bytes_moved(op, bytes) / 1e9,
                                              benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(kernels::bandwidth_op_name(op)));
}

std::vector<std::int64_t> sizes() {
  std::vector<std::int64_t> out;
  for (std::int64_t bytes = 1 << 20; bytes <= (4ll << 30); bytes *= 4) out.push_back(bytes);
  return out;
}

// v2 runs for read (0) and copy (2) up to 64 MiB: around the L2 size.
bool has_v2(int op, std::int64_t bytes) { return (op == 0 || op == 2) && bytes <= (64ll << 20); }

void bandwidth_args(benchmark::internal::Benchmark* b) {
  for (int op = 0; op < 4; ++op)
    for (const std::int64_t bytes : sizes()) {
      b->Args({op, bytes, 1});
      if (has_v2(op, bytes)) b->Args({op, bytes, 2});
    }
}

void plan_bandwidth(std::vector<case_work>& out) {
  for (int op = 0; op < 4; ++op)
    for (const std::int64_t bytes : sizes()) {
      const auto o = static_cast<bandwidth_op>(op);
      const auto b = static_cast<std::size_t>(bytes);
      out.push_back({"bm_bandwidth", "", static_cast<double>(warmup_launches + timed_iterations * inner_for(b)), 0,
                     kernels::bandwidth_bytes_moved(o, b), static_cast<double>(operands_of(o)) * static_cast<double>(b)});
      if (has_v2(op, bytes))  // the same sweeps in fewer launches
        out.push_back({"bm_bandwidth", "", static_cast<double>(warmup_launches + timed_iterations),
                       0, kernels::bandwidth_bytes_moved(o, b) * inner_for(b), static_cast<double>(operands_of(o)) * static_cast<double>(b)});
    }
}

}  // namespace

const auto* const registered =
    register_case("bm_bandwidth", bm_bandwidth_body)->Apply(bandwidth_args)->ArgNames({"op", "bytes", "kernel"});
const int planned = register_planner(plan_bandwidth);

}  // namespace gpucal::bench
