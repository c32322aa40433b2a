// Fits (see fit.hpp).
#include "gpucal/model/fit.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <charconv>
#include <optional>
#include <stdexcept>

#include "detail/json_fields.hpp"
#include "gpucal/model/catalog.hpp"

namespace gpucal::model {

namespace {

void fill_residuals(fit_result& r, const std::vector<double>& predicted, const std::vector<double>& measured) {
  double sum2 = 0;
  r.residual_max_rel = 0;
  for (std::size_t i = 0; i < measured.size(); ++i) {
    const double e = std::fabs(predicted[i] - measured[i]) / measured[i];
    r.residual_max_rel = std::max(r.residual_max_rel, e);
    sum2 += e * e;
  }
  r.points = static_cast<int>(measured.size());
  r.residual_rms_rel = measured.empty() ? 0 : std::sqrt(sum2 / static_cast<double>(measured.size()));
}

}  // namespace

gemm_fit fit_gemm(const std::string& kind, const std::vector<gemm_point>& points, double peak_tflops, double hbm_gbps,
                  double in_bytes, double out_bytes) {
  if (points.size() < 3) throw std::invalid_argument("fit_gemm: at least 3 points are needed for " + kind);
  std::set<double> ms;
  for (const auto& p : points) ms.insert(p.m);
  const std::vector<double> grid(ms.begin(), ms.end());
  const auto cols = static_cast<Eigen::Index>(2 + grid.size());
  Eigen::MatrixXd a = Eigen::MatrixXd::Zero(static_cast<Eigen::Index>(points.size()), cols);
  Eigen::VectorXd y(static_cast<Eigen::Index>(points.size()));
  const double peak = peak_tflops * 1e12, bw = hbm_gbps * 1e9;
  for (std::size_t i = 0; i < points.size(); ++i) {
    const gemm_point& p = points[i];
    const double t = p.time_us * 1e-6;
    const double bytes = (p.m * p.k + p.n * p.k) * in_bytes + p.m * p.n * out_bytes;
    const double flops = 2 * p.m * p.n * p.k;
    const auto row = static_cast<Eigen::Index>(i);
    const auto g = static_cast<Eigen::Index>(std::lower_bound(grid.begin(), grid.end(), p.m) - grid.begin());
    // Weighted by 1/t: each row's residual is a relative error.
    a(row, 0) = 1e-6 / t;          // latency, in us
    a(row, 1) = bytes / bw / t;    // 1 / e_mem
    a(row, 2 + g) = flops / peak / t;  // 1 / e_comp(M)
    y(row) = 1;
  }
  const Eigen::VectorXd x = a.colPivHouseholderQr().solve(y);

  gemm_fit f;
  f.latency_us = std::max(0.0, x(0));
  f.curve.memory_efficiency = std::clamp(1 / x(1), 1e-4, 1.0);
  for (std::size_t g = 0; g < grid.size(); ++g) {
    f.curve.m.push_back(grid[g]);
    f.curve.compute_efficiency.push_back(std::clamp(1 / x(static_cast<Eigen::Index>(2 + g)), 1e-4, 1.0));
  }
  f.curve.source = "measured";
  f.curve.note = "least-squares fit of t = latency + bytes / (HBM x e_mem) + flops / (peak x e_comp(M)) over " +
                 std::to_string(points.size()) + " cuBLASLt runs";
  f.result.name = "gemm/" + kind;
  f.result.model = "t = latency + bytes / (hbm x memory_efficiency) + flops / (peak x compute_efficiency(m))";
  f.result.params["latency_us"] = f.latency_us;
  f.result.params["memory_efficiency"] = f.curve.memory_efficiency;
  for (std::size_t g = 0; g < grid.size(); ++g)
    f.result.params["compute_efficiency_m" + std::to_string(static_cast<long long>(grid[g]))] = f.curve.compute_efficiency[g];
  const Eigen::VectorXd predicted = a * x;  // in units of the measured time
  std::vector<double> pred, meas(points.size(), 1.0);
  for (Eigen::Index i = 0; i < predicted.size(); ++i) pred.push_back(predicted(i));
  fill_residuals(f.result, pred, meas);
  return f;
}

fit_result fit_ratio(const std::string& name, const std::vector<double>& achieved, double peak, double* efficiency) {
  if (achieved.empty()) throw std::invalid_argument("fit_ratio: no points for " + name);
  std::vector<double> ratios;
  for (double v : achieved) ratios.push_back(v / peak);
  const double e = median_of(ratios);
  fit_result r;
  r.name = name;
  r.model = "achieved = efficiency x datasheet";
  r.params["efficiency"] = e;
  fill_residuals(r, std::vector<double>(achieved.size(), e * peak), achieved);
  if (efficiency) *efficiency = e;
  return r;
}

activation_fit fit_activation(const std::vector<activation_point>& points, const std::string& what) {
  const std::string where = "fit_activation (" + what + ")";
  std::vector<double> x, y;
  std::set<double> distinct;
  for (std::size_t i = 0; i < points.size(); ++i) {
    const activation_point& p = points[i];
    const double xi = std::max(p.model_forward_bytes, p.model_sampler_bytes);
    if (p.tokens <= 0) throw std::invalid_argument(fmt::format("{}: point {} has tokens {}; it must be > 0", where, i, p.tokens));
    if (!(std::isfinite(xi) && xi > 0))
      throw std::invalid_argument(fmt::format("{}: point {} ({} tokens) has a model peak max(forward, sampler) of {} bytes; "
                                              "it must be a finite number > 0", where, i, p.tokens, xi));
    if (!(std::isfinite(p.measured_peak_bytes) && p.measured_peak_bytes > 0))
      throw std::invalid_argument(fmt::format("{}: point {} ({} tokens) has a measured peak of {} bytes; it must be a "
                                              "finite number > 0", where, i, p.tokens, p.measured_peak_bytes));
    x.push_back(xi);
    y.push_back(p.measured_peak_bytes);
    distinct.insert(xi);
  }
  if (distinct.size() < 2)
    throw std::invalid_argument(fmt::format("{}: needs at least 2 points with distinct model peaks max(forward, sampler) to "
                                            "fit scale and fixed; got {} point(s), {} distinct", where, points.size(),
                                            distinct.size()));

  // Rows weighted by 1/measured, so each residual is a relative error; fixed
  // is solved in GiB to keep both columns of order one.
  constexpr double gib = 1024.0 * 1024.0 * 1024.0;
  const auto n = static_cast<Eigen::Index>(points.size());
  Eigen::MatrixXd a(n, 2);
  const Eigen::VectorXd ones = Eigen::VectorXd::Ones(n);
  for (Eigen::Index i = 0; i < n; ++i) {
    const auto k = static_cast<std::size_t>(i);
    a(i, 0) = x[k] / y[k];
    a(i, 1) = gib / y[k];
  }
  const Eigen::VectorXd sol = a.colPivHouseholderQr().solve(ones);
  double scale = sol(0), fixed_bytes = sol(1) * gib;
  std::string clamp_note;
  if (fixed_bytes < 0) {
    // Weighted least squares through the origin: scale = sum(x/y) / sum((x/y)^2).
    const double free_fixed = fixed_bytes;
    scale = a.col(0).sum() / a.col(0).squaredNorm();
    fixed_bytes = 0;
    clamp_note = fmt::format("; the free fit gave fixed = {:.0f} bytes (< 0), so fixed is clamped to 0 and scale refitted "
                             "alone", free_fixed);
  }
  if (!(std::isfinite(scale) && scale >= 0.1 && scale <= 10))
    throw std::runtime_error(fmt::format("{}: fitted activation_scale {} is outside [0.1, 10], the range the coefficients "
                                         "parser accepts; the measured peaks do not follow the model's", where, scale));
  if (!(std::isfinite(fixed_bytes) && fixed_bytes <= 1e13))
    throw std::runtime_error(fmt::format("{}: fitted activation_fixed_bytes {} is outside [0, 1e13], the range the "
                                         "coefficients parser accepts", where, fixed_bytes));

  const auto [lo, hi] = std::minmax_element(points.begin(), points.end(),
                                            [](const activation_point& l, const activation_point& r) { return l.tokens < r.tokens; });
  const std::string over = fmt::format("least-squares fit (relative error) of measured peak = scale x max(forward, sampler) "
                                       "+ fixed over {} measured forward + sampler passes of {}, {} to {} tokens{}",
                                       points.size(), what, lo->tokens, hi->tokens, clamp_note);
  activation_fit f;
  f.scale = {scale, "measured", over};
  f.fixed_bytes = {fixed_bytes, "measured", over};
  f.result.name = "activation/" + what;
  f.result.model = "peak = scale x max(forward, sampler) + fixed_bytes";
  f.result.params["scale"] = scale;
  f.result.params["fixed_bytes"] = fixed_bytes;
  std::vector<double> predicted;
  for (double xi : x) predicted.push_back(scale * xi + fixed_bytes);
  fill_residuals(f.result, predicted, y);
  return f;
}

step_overhead_fit fit_step_overhead(const std::vector<step_point>& points, const std::string& engine) {
  const std::string where = "fit_step_overhead (" + engine + ")";
  if (points.empty()) throw std::invalid_argument(where + ": no measured steps");
  std::vector<double> gaps, measured;
  int decode = 0, prefill = 0;
  for (std::size_t i = 0; i < points.size(); ++i) {
    const step_point& p = points[i];
    if (p.kind == "decode") ++decode;
    else if (p.kind == "prefill") ++prefill;
    else throw std::invalid_argument(fmt::format("{}: point {} has kind '{}' (allowed: decode, prefill)", where, i, p.kind));
    if (!(std::isfinite(p.measured_us) && p.measured_us > 0))
      throw std::invalid_argument(fmt::format("{}: point {} ({}) has measured_us {}; it must be a finite number > 0", where,
                                              i, p.kind, p.measured_us));
    if (!(std::isfinite(p.kernels_us) && p.kernels_us >= 0))
      throw std::invalid_argument(fmt::format("{}: point {} ({}) has kernels_us {}; it must be a finite number >= 0", where,
                                              i, p.kind, p.kernels_us));
    gaps.push_back(p.measured_us - p.kernels_us);
    measured.push_back(p.measured_us);
  }
  const double median_gap = median_of(gaps);
  const double overhead = std::max(0.0, median_gap);
  if (overhead > 1e6)
    throw std::runtime_error(fmt::format("{}: fitted step overhead {} us is outside [0, 1e6], the range the coefficients "
                                         "parser accepts", where, overhead));
  std::string note = fmt::format("median of measured step time - the model's sum of kernel times over {} steps ({} decode, "
                                 "{} prefill) of {}", points.size(), decode, prefill, engine);
  if (median_gap < 0)
    note += fmt::format("; the median gap was {:.1f} us (steps faster than the modelled kernels), clamped to 0", median_gap);
  step_overhead_fit f;
  f.overhead_us = {overhead, "measured", note};
  f.result.name = "step_overhead/" + engine;
  f.result.model = "t_step = kernels + overhead_us";
  f.result.params["overhead_us"] = overhead;
  std::vector<double> predicted;
  for (const step_point& p : points) predicted.push_back(p.kernels_us + overhead);
  fill_residuals(f.result, predicted, measured);
  return f;
}

namespace {

using detail::field_reader;
using detail::json;

// A decimal number spelled whole by `text`, or nullopt.
std::optional<double> parse_number(std::string_view text) {
  double v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

// The arguments of one run, from its name:
// "bm_gemm/dtype:0/shape:3/m:16/manual_time" -> {"dtype": 0, "shape": 3, "m": 16}.
class bench_args {
public:
  bench_args(const field_reader& run, const std::string& name) : run_(run), name_(name) {
    std::size_t pos = name.find('/');
    while (pos != std::string::npos) {
      const std::size_t next = name.find('/', pos + 1);
      const std::string part = name.substr(pos + 1, next == std::string::npos ? std::string::npos : next - pos - 1);
      const std::size_t colon = part.find(':');
      if (colon != std::string::npos) {
        const auto v = parse_number(std::string_view(part).substr(colon + 1));
        if (!v) run.fail("run_name", fmt::format("'{}': argument '{}' is not a number", name, part));
        args_[part.substr(0, colon)] = *v;
      }
      pos = next;
    }
  }
  double at(const char* key, double lo, double hi) const {
    const auto it = args_.find(key);
    if (it == args_.end()) run_.fail("run_name", fmt::format("'{}' has no '{}:' argument", name_, key));
    if (it->second < lo || it->second > hi)
      run_.fail("run_name", fmt::format("'{}': {} = {:g} is outside [{:g}, {:g}]", name_, key, it->second, lo, hi));
    return it->second;
  }

private:
  const field_reader& run_;
  std::string name_;
  std::map<std::string, double> args_;
};

// A run's real_time in microseconds: finite and > 0, in a unit Google Benchmark writes.
double run_time_us(const field_reader& r) {
  const std::string unit = r.string("time_unit");
  double scale = 0;
  if (unit == "ns") scale = 1e-3;
  else if (unit == "us") scale = 1;
  else if (unit == "ms") scale = 1e3;
  else if (unit == "s") scale = 1e6;
  else r.fail("time_unit", fmt::format("is '{}' (allowed: ns, us, ms, s)", unit));
  return r.number_in("real_time", 1e-9, 1e15) * scale;
}

// A context entry Google Benchmark's custom context carries as a string; "unknown" when absent.
std::string context_string(const field_reader& ctx, const char* key) {
  return ctx.has(key) ? ctx.string(key) : "unknown";
}

// A numeric context entry (written as a string), in [lo, hi]; nullopt when absent.
std::optional<double> context_number(const field_reader& ctx, const char* key, double lo, double hi) {
  if (!ctx.has(key)) return std::nullopt;
  const std::string text = ctx.string(key);
  const auto v = parse_number(text);
  if (!v || *v < lo || *v > hi) ctx.fail(key, fmt::format("must be a number in [{:g}, {:g}], got '{}'", lo, hi, text));
  return v;
}

}  // namespace

calibration_file calibration_from_benchmarks(std::string_view bench_json, std::string_view where, const gpu_spec& gpu,
                                             const std::string& created_utc, const std::string& tool_version,
                                             const std::string& git_commit) {
  const json root = detail::parse_json_text(bench_json, where);
  field_reader top(root, std::string(where));
  const field_reader ctx = top.child("context");
  const json& runs = top.array("benchmarks");

  calibration_file c;
  c.tool_version = tool_version;
  c.git_commit = git_commit;
  c.created_utc = created_utc;
  c.device.name = context_string(ctx, "gpu_name");
  c.device.sku = gpu.slug;
  c.device.compute_capability = context_string(ctx, "compute_capability");
  c.device.sm_count = gpu.sm_count;
  if (const auto sms = context_number(ctx, "sm_count", 1, 1e5)) c.device.sm_count = static_cast<int>(*sms);
  // The measured total (cudaMemGetInfo) is at most the datasheet capacity.
  c.device.total_memory_bytes = gpu.memory_bytes;
  if (const auto total = context_number(ctx, "total_memory_bytes", 1, static_cast<double>(gpu.memory_bytes)))
    c.device.total_memory_bytes = static_cast<std::int64_t>(*total);
  c.device.driver_version = context_string(ctx, "driver_version");
  // It names the calibration file: letters, digits, '.', '-' and '_' only.
  if (c.device.driver_version.empty() || c.device.driver_version.size() > 64 ||
      c.device.driver_version.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") !=
          std::string::npos)
    ctx.fail("driver_version", fmt::format("is '{}' (expected a version like 580.95.05)", c.device.driver_version));
  c.device.cuda_runtime = "unknown";
  if (const auto rt = context_number(ctx, "cuda_runtime", 1000, 1e6)) {  // e.g. "13000" -> "13.0"
    const auto v = static_cast<std::int64_t>(*rt);
    c.device.cuda_runtime = fmt::format("{}.{}", v / 1000, v % 1000 / 10);
  }
  for (const char* k : {"sm_mhz", "mem_mhz", "temperature_c"})
    if (const auto v = context_number(ctx, (std::string("clocks_start_") + k).c_str(), 0, 1e5)) c.device.clocks_start[k] = *v;

  // Every repetition of a case is one sample.
  std::map<std::string, measurement> by_name;
  std::vector<std::string> order;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    field_reader r(runs[i], fmt::format("{}: benchmarks[{}]", where, i));
    if (r.string_or("run_type", "iteration") != "iteration" || r.boolean_or("error_occurred", false)) continue;
    const std::string full = r.string("run_name");
    const std::string family = full.substr(0, full.find('/'));
    if (family != "bm_gemm" && family != "bm_bandwidth" && family != "bm_paged_attention" && family != "bm_prefill_attention")
      continue;  // other families are kept in the raw benchmark JSON only
    const bench_args args(r, full);
    const std::string label = r.string_or("label", "");
    const double sample = run_time_us(r);
    measurement m;
    m.unit = "us";
    if (family == "bm_gemm") {
      const std::size_t space = label.find(' ');
      if (space == std::string::npos || space == 0 || space + 1 == label.size())
        r.fail("label", fmt::format("is '{}' (expected '<dtype> <shape>', e.g. 'bf16 square.8192')", label));
      m.labels["kind"] = "gemm";
      m.labels["dtype"] = label.substr(0, space);
      m.labels["shape"] = label.substr(space + 1);
      m.params["m"] = args.at("m", 1, 1e7);
      m.params["n"] = r.number_in("n", 1, 1e7);
      m.params["k"] = r.number_in("k", 1, 1e7);
      m.name = fmt::format("gemm/{}/{}/m={}", m.labels["dtype"], m.labels["shape"], m.params["m"]);
    } else if (family == "bm_bandwidth") {
      if (label.empty()) r.fail("label", "is missing (expected the operation, e.g. 'copy')");
      m.labels["kind"] = "bandwidth";
      m.labels["op"] = label;
      m.params["bytes"] = args.at("bytes", 1, 1e15);
      // Bytes read plus written per run: the rate times the run's own time.
      m.params["bytes_moved"] = r.number_in("GB/s", 1e-9, 1e6) * 1e9 * sample * 1e-6;
      m.name = fmt::format("bandwidth/{}/bytes={}", label, m.params["bytes"]);
    } else if (family == "bm_prefill_attention") {
      m.labels["kind"] = "prefill_attention";
      m.labels["kv"] = args.at("fp8", 0, 1) != 0 ? "fp8" : "bf16";
      m.params["prefix"] = args.at("prefix", 0, 1e10);
      m.params["chunk"] = args.at("chunk", 1, 1e10);
      m.params["flops"] = r.number_in("flops", 1, 1e20);
      m.name = fmt::format("prefill_attention/{}/prefix={}/chunk={}", m.labels["kv"], m.params["prefix"], m.params["chunk"]);
    } else {
      m.labels["kind"] = "attention";
      m.labels["kv"] = args.at("fp8", 0, 1) != 0 ? "fp8" : "bf16";
      m.params["batch"] = args.at("batch", 1, 1e7);
      m.params["context"] = args.at("context", 1, 1e10);
      m.params["kv_bytes"] = r.number_in("kv_bytes", 1, 1e15);
      m.name = fmt::format("attention/{}/batch={}/context={}", m.labels["kv"], m.params["batch"], m.params["context"]);
    }
    auto [it, inserted] = by_name.emplace(m.name, m);
    if (inserted) order.push_back(m.name);
    it->second.samples.push_back(sample);
  }
  for (const auto& name : order) c.measurements.push_back(by_name.at(name));
  if (c.measurements.empty())
    throw input_error(fmt::format("{}: holds no gpucal_bench results (no successful bm_gemm, bm_bandwidth, "
                                  "bm_paged_attention or bm_prefill_attention iterations)", where));

  c.coeffs = default_coefficients();
  c.coeffs.usable_memory_bytes = c.device.total_memory_bytes;

  // GEMM curves per measured family.
  const std::map<std::string, std::pair<std::string, double>> families = {
      {"bf16", {"bf16", 2}}, {"fp8", {"fp8", 1}}, {"int8", {"int8", 1}}};
  for (const auto& [dtype, info] : families) {
    std::vector<gemm_point> pts;
    for (const auto& m : c.measurements)
      if (m.labels.count("kind") && m.labels.at("kind") == "gemm" && m.labels.at("dtype") == dtype)
        pts.push_back({m.params.at("m"), m.params.at("n"), m.params.at("k"), m.median()});
    if (pts.size() < 3 || !gpu.supports(info.first)) continue;
    const double out_bytes = dtype == "int8" ? 4 : 2;
    gemm_fit f = fit_gemm(dtype, pts, gpu.peak_tflops.at(info.first), gpu.hbm_bandwidth_gbps, info.second, out_bytes);
    c.coeffs.throughput.gemm[dtype] = f.curve;
    c.fits.push_back(f.result);
  }
  // HBM efficiency: copies of at least 1 GiB; decode attention: its KV read rate.
  std::vector<double> copy_gbps, attn_gbps, prefill_tflops;
  for (const auto& m : c.measurements) {
    const std::string kind = m.labels.count("kind") ? m.labels.at("kind") : "";
    if (kind == "bandwidth" && m.labels.at("op") == "copy" && m.params.at("bytes") >= (1ll << 30))
      copy_gbps.push_back(m.params.at("bytes_moved") / (m.median() * 1e3));  // bytes / us / 1e3 = GB/s
    if (kind == "attention" && m.labels.at("kv") == "bf16" && m.params.at("kv_bytes") >= 1e9)
      attn_gbps.push_back(m.params.at("kv_bytes") / 1e3 / m.median());
    if (kind == "prefill_attention" && m.labels.at("kv") == "bf16" && m.params.at("chunk") >= 4096)
      prefill_tflops.push_back(m.params.at("flops") / 1e6 / m.median());  // flops / us / 1e6 = TFLOP/s
  }
  double e = 0;
  if (!copy_gbps.empty()) {
    c.fits.push_back(fit_ratio("bandwidth/copy", copy_gbps, gpu.hbm_bandwidth_gbps, &e));
    c.coeffs.throughput.hbm_efficiency = {e, "measured", "median copy GB/s (read + write) at >= 1 GiB over the datasheet HBM bandwidth"};
  }
  if (!attn_gbps.empty()) {
    c.fits.push_back(fit_ratio("attention/decode", attn_gbps, gpu.hbm_bandwidth_gbps, &e));
    c.coeffs.throughput.decode_attention_efficiency = {e, "measured", "median KV-read GB/s of paged decode attention (bf16 KV, >= 1 GB per call) over the datasheet HBM bandwidth"};
  }
  if (!prefill_tflops.empty() && gpu.supports("bf16")) {
    c.fits.push_back(fit_ratio("attention/prefill", prefill_tflops, gpu.peak_tflops.at("bf16"), &e));
    c.coeffs.throughput.prefill_attention_efficiency = {e, "measured", "median causal TFLOP/s of prefill attention (bf16 KV, chunks of >= 4096 tokens) over the datasheet bf16 peak"};
  }
  return c;
}

}  // namespace gpucal::model
