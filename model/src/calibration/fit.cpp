// Fits (see fit.hpp).
#include "gpucal/model/fit.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <map>
#include <set>
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

// "bm_gemm/dtype:0/shape:3/m:16/manual_time" -> {"dtype": 0, "shape": 3, "m": 16}
std::map<std::string, double> bench_args(const std::string& name) {
  std::map<std::string, double> args;
  std::size_t pos = name.find('/');
  while (pos != std::string::npos) {
    const std::size_t next = name.find('/', pos + 1);
    const std::string part = name.substr(pos + 1, next == std::string::npos ? std::string::npos : next - pos - 1);
    const std::size_t colon = part.find(':');
    if (colon != std::string::npos) args[part.substr(0, colon)] = std::stod(part.substr(colon + 1));
    pos = next;
  }
  return args;
}

double to_us(double t, const std::string& unit) {
  if (unit == "ns") return t / 1e3;
  if (unit == "us") return t;
  if (unit == "ms") return t * 1e3;
  return t * 1e6;  // "s"
}

std::string context_string(const json& ctx, const char* key) {
  return ctx.contains(key) && ctx.at(key).is_string() ? ctx.at(key).get<std::string>() : "unknown";
}

}  // namespace

calibration_file calibration_from_benchmarks(std::string_view bench_json, std::string_view where, const gpu_spec& gpu,
                                             const std::string& created_utc, const std::string& tool_version,
                                             const std::string& git_commit) {
  const json root = detail::parse_json_text(bench_json, where);
  field_reader top(root, std::string(where));
  const json& ctx = top.object("context");
  const json& runs = top.array("benchmarks");

  calibration_file c;
  c.tool_version = tool_version;
  c.git_commit = git_commit;
  c.created_utc = created_utc;
  c.device.name = context_string(ctx, "gpu_name");
  c.device.sku = gpu.slug;
  c.device.compute_capability = context_string(ctx, "compute_capability");
  c.device.sm_count = std::stoll(context_string(ctx, "sm_count") == "unknown" ? "0" : context_string(ctx, "sm_count"));
  const std::string total = context_string(ctx, "total_memory_bytes");
  c.device.total_memory_bytes = total == "unknown" ? gpu.memory_bytes : std::stoll(total);
  c.device.driver_version = context_string(ctx, "driver_version");
  const std::string rt = context_string(ctx, "cuda_runtime");  // e.g. "13000"
  c.device.cuda_runtime = rt == "unknown" ? rt : std::to_string(std::stoi(rt) / 1000) + "." + std::to_string(std::stoi(rt) % 1000 / 10);
  for (const char* when : {"start"}) {
    const std::string p = std::string("clocks_") + when + "_";
    for (const char* k : {"sm_mhz", "mem_mhz", "temperature_c"}) {
      const std::string v = context_string(ctx, (p + k).c_str());
      if (v != "unknown") c.device.clocks_start[k] = std::stod(v);
    }
  }

  // Every repetition of a case is one sample.
  std::map<std::string, measurement> by_name;
  std::vector<std::string> order;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    field_reader r(runs[i], fmt::format("{}: benchmarks[{}]", where, i));
    if (r.string_or("run_type", "iteration") != "iteration" || r.boolean_or("error_occurred", false)) continue;
    const std::string full = r.string("run_name");
    const std::string family = full.substr(0, full.find('/'));
    const auto args = bench_args(full);
    const std::string label = r.string_or("label", "");
    measurement m;
    m.unit = "us";
    if (family == "bm_gemm") {
      m.labels["kind"] = "gemm";
      m.labels["dtype"] = label.substr(0, label.find(' '));
      m.labels["shape"] = label.substr(label.find(' ') + 1);
      m.params["m"] = args.at("m");
      m.params["n"] = r.number("n");
      m.params["k"] = r.number("k");
      m.name = fmt::format("gemm/{}/{}/m={}", m.labels["dtype"], m.labels["shape"], args.at("m"));
    } else if (family == "bm_bandwidth") {
      m.labels["kind"] = "bandwidth";
      m.labels["op"] = label;
      m.params["bytes"] = args.at("bytes");
      // Bytes read plus written per run: the rate times the run's own time.
      m.params["bytes_moved"] = r.number("GB/s") * 1e9 * to_us(r.number("real_time"), r.string("time_unit")) * 1e-6;
      m.name = fmt::format("bandwidth/{}/bytes={}", label, args.at("bytes"));
    } else if (family == "bm_paged_attention") {
      m.labels["kind"] = "attention";
      m.labels["kv"] = args.at("fp8") != 0 ? "fp8" : "bf16";
      m.params["batch"] = args.at("batch");
      m.params["context"] = args.at("context");
      m.params["kv_bytes"] = r.number("kv_bytes");
      m.name = fmt::format("attention/{}/batch={}/context={}", m.labels["kv"], args.at("batch"), args.at("context"));
    } else {
      continue;  // other families are kept in the raw benchmark JSON only
    }
    const double sample = to_us(r.number("real_time"), r.string("time_unit"));
    auto [it, inserted] = by_name.emplace(m.name, m);
    if (inserted) order.push_back(m.name);
    it->second.samples.push_back(sample);
  }
  for (const auto& name : order) c.measurements.push_back(by_name.at(name));

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
  std::vector<double> copy_gbps, attn_gbps;
  for (const auto& m : c.measurements) {
    const std::string kind = m.labels.count("kind") ? m.labels.at("kind") : "";
    if (kind == "bandwidth" && m.labels.at("op") == "copy" && m.params.at("bytes") >= (1ll << 30))
      copy_gbps.push_back(m.params.at("bytes_moved") / (m.median() * 1e3));  // bytes / us / 1e3 = GB/s
    if (kind == "attention" && m.labels.at("kv") == "bf16" && m.params.at("kv_bytes") >= 1e9)
      attn_gbps.push_back(m.params.at("kv_bytes") / 1e3 / m.median());
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
  return c;
}

}  // namespace gpucal::model
