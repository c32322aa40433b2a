// vLLM startup logs and the fit of an engine profile to them (see engine_log.hpp).
#include "gpucal/model/engine_log.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>

#include "gpucal/model/calibration.hpp"
#include "gpucal/model/errors.hpp"
#include "gpucal/model/memory_model.hpp"
#include "gpucal/model/units.hpp"

namespace gpucal::model {

namespace {

// The number right after `key` in `line` (commas between digits ignored), or nullopt.
std::optional<double> number_after(std::string_view line, std::string_view key) {
  const auto at = line.find(key);
  if (at == std::string_view::npos) return std::nullopt;
  std::string digits;
  for (std::size_t i = at + key.size(); i < line.size() && digits.size() < 32; ++i) {
    const char c = line[i];
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '.' || (c == '-' && digits.empty())) digits += c;
    else if (c == ',' && !digits.empty() && i + 1 < line.size() && std::isdigit(static_cast<unsigned char>(line[i + 1]))) continue;
    else break;
  }
  double v = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (ec != std::errc() || end != digits.data() + digits.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

// The text after `key` up to the first of `stops`.
std::optional<std::string> text_after(std::string_view line, std::string_view key, std::string_view stops) {
  const auto at = line.find(key);
  if (at == std::string_view::npos) return std::nullopt;
  const std::string_view rest = line.substr(at + key.size());
  return std::string(rest.substr(0, std::min(rest.find_first_of(stops), std::size_t{256})));
}

std::optional<std::int64_t> whole(std::optional<double> v) {
  if (!v || *v < 0 || *v > 9e15) return std::nullopt;
  return static_cast<std::int64_t>(std::llround(*v));
}

// "(Worker_TP1 pid=445) ..." -> "Worker_TP1"
std::string worker_of(std::string_view line) {
  if (!line.starts_with("(")) return "";
  const auto end = line.find_first_of(" )");
  return end == std::string_view::npos ? "" : std::string(line.substr(1, end - 1));
}

}  // namespace

vllm_log parse_vllm_log(std::string_view text, std::string_view path) {
  vllm_log log;
  log.path = std::string(path);
  std::size_t start = 0;
  bool old_profile_pending = false;
  std::string old_worker;
  while (start < text.size()) {
    const std::size_t end = std::min(text.find('\n', start), text.size());
    const std::string_view line = text.substr(start, end - start);
    start = end + 1;
    if (const auto v = text_after(line, "LLM engine (v", ")")) log.version = *v;
    else if (const auto api = text_after(line, "API server version ", " \r")) log.version = log.version.empty() ? *api : log.version;
    if (line.find("LLM engine (v") != std::string_view::npos && line.find("with config:") != std::string_view::npos) {
      if (const auto m = text_after(line, "model='", "'")) log.model = *m;
      if (const auto v = whole(number_after(line, "tensor_parallel_size="))) log.tp = static_cast<int>(std::clamp<std::int64_t>(*v, 1, 4096));
      if (const auto v = whole(number_after(line, "pipeline_parallel_size="))) log.pp = static_cast<int>(std::clamp<std::int64_t>(*v, 1, 4096));
      if (const auto v = text_after(line, "dtype=torch.", ",")) log.dtype = *v;
      if (const auto v = text_after(line, "kv_cache_dtype=", ",")) log.kv_cache_dtype = *v;
      if (const auto v = text_after(line, "quantization=", ",")) log.quantization = *v == "None" ? "" : *v;
      if (const auto v = text_after(line, "enforce_eager=", ",")) log.enforce_eager = *v == "True";
      if (!log.max_model_len) log.max_model_len = whole(number_after(line, "max_seq_len="));
    }
    if (line.find("non-default args:") != std::string_view::npos) {
      if (log.model.empty())
        if (const auto m = text_after(line, "'model': '", "'")) log.model = *m;
      log.gpu_memory_utilization = number_after(line, "'gpu_memory_utilization': ");
      if (const auto v = whole(number_after(line, "'max_num_seqs': "))) log.max_num_seqs = v;
      if (const auto v = whole(number_after(line, "'max_num_batched_tokens': "))) log.max_num_batched_tokens = v;
    }
    if (const auto v = whole(number_after(line, "Using max model len "))) log.max_model_len = v;
    if (const auto v = whole(number_after(line, "Chunked prefill is enabled with max_num_batched_tokens="))) log.max_num_batched_tokens = v;
    if (const auto v = whole(number_after(line, "Defaulting max_num_seqs to "))) log.max_num_seqs = log.max_num_seqs ? log.max_num_seqs : v;
    if (const auto v = number_after(line, "total_memory=")) log.total_memory_gib = v;
    if (const auto v = number_after(line, "total_gpu_memory (")) log.total_memory_gib = v;
    if (const auto u = number_after(line, "gpu_memory_utilization (")) log.gpu_memory_utilization = log.gpu_memory_utilization ? log.gpu_memory_utilization : u;
    // vLLM >= 0.10: one line per worker.
    if (line.find("Total non KV cache memory:") != std::string_view::npos) {
      const auto peak = number_after(line, "torch peak memory increase: ");
      const auto nt = number_after(line, "non-torch forward increase memory: ");
      const auto w = number_after(line, "weights memory: ");
      if (peak && nt && w) log.workers.push_back({worker_of(line), *w, *peak, *nt});
    }
    // Older releases: "model weights take ...; non_torch_memory takes ...; PyTorch activation peak memory takes ...".
    if (line.find("Memory profiling takes") != std::string_view::npos) {
      old_profile_pending = true;
      old_worker = worker_of(line);
    }
    if (line.find("model weights take ") != std::string_view::npos) {
      const auto w = number_after(line, "model weights take ");
      const auto nt = number_after(line, "non_torch_memory takes ");
      const auto peak = number_after(line, "PyTorch activation peak memory takes ");
      if (w && nt && peak) log.workers.push_back({old_profile_pending ? old_worker : worker_of(line), *w, *peak, *nt});
      if (const auto kv = number_after(line, "the rest of the memory reserved for KV Cache is ")) log.available_kv_gib = kv;
      old_profile_pending = false;
    }
    if (const auto v = number_after(line, "Available KV cache memory: ")) {
      log.available_kv_gib = log.available_kv_gib ? std::min(*log.available_kv_gib, *v) : *v;  // the tightest worker
    }
    if (const auto v = whole(number_after(line, "GPU KV cache size: "))) log.kv_tokens = v;
    if (line.find("Maximum concurrency for ") != std::string_view::npos)
      if (const auto v = number_after(line, "tokens per request: ")) log.max_concurrency = v;
    if (const auto v = number_after(line, "Estimated CUDA graph memory: ")) log.cuda_graph_estimate_gib = v;
  }
  std::vector<std::string> missing;
  if (log.version.empty()) missing.emplace_back("the vLLM version (\"LLM engine (vX.Y.Z)\" or \"API server version\")");
  if (log.model.empty()) missing.emplace_back("the model (\"with config: model='...'\" or non-default args)");
  if (!log.available_kv_gib) missing.emplace_back("\"Available KV cache memory: X GiB\"");
  if (!missing.empty()) {
    std::string what;
    for (const auto& m : missing) what += (what.empty() ? "" : "; ") + m;
    throw input_error(fmt::format("--vllm-log: '{}' is not a vLLM startup log gpucal can read: no {}", path, what));
  }
  return log;
}

namespace {

// The estimate options a log's deployment ran with.
estimate_options options_of(const vllm_log& log) {
  estimate_options o;
  o.tp = log.tp;
  if (log.gpu_memory_utilization) o.gpu_memory_utilization = log.gpu_memory_utilization;
  if (log.max_model_len) o.max_model_len = log.max_model_len;
  if (log.max_num_seqs) o.max_num_seqs = log.max_num_seqs;
  if (log.max_num_batched_tokens) o.max_num_batched_tokens = log.max_num_batched_tokens;
  if (log.dtype != "auto") o.dtype = log.dtype;
  if (log.kv_cache_dtype != "auto") o.kv_cache_dtype = log.kv_cache_dtype;
  // A --quantization flag of the run (fp8 on a 16-bit checkpoint); a checkpoint's own format comes from its config.
  if (log.quantization == "fp8") o.quantization = log.quantization;
  o.enforce_eager = log.enforce_eager;
  return o;
}

fit_result spread_fit(const std::string& name, const std::string& what, const std::vector<double>& points, double value) {
  fit_result r;
  r.name = name;
  r.model = what;
  r.params["value"] = value;
  r.points = static_cast<int>(points.size());
  double sum2 = 0;
  for (double p : points) {
    const double e = value > 0 ? std::fabs(p - value) / value : 0;
    r.residual_max_rel = std::max(r.residual_max_rel, e);
    sum2 += e * e;
  }
  r.residual_rms_rel = points.empty() ? 0 : std::sqrt(sum2 / static_cast<double>(points.size()));
  return r;
}

}  // namespace

engine_log_fit fit_engine_to_logs(const std::vector<vllm_log>& logs, const engine_profile& base, const gpu_spec& gpu,
                                  const coefficients& defaults, int holdout,
                                  const std::function<model_spec(const std::string&)>& resolve) {
  engine_log_fit out;
  struct usable {
    const vllm_log* log;
    model_spec m;
    bool held_out;
  };
  std::vector<usable> all;
  for (std::size_t i = 0; i < logs.size(); ++i) {
    const vllm_log& log = logs[i];
    try {
      all.push_back({&log, resolve(log.model), holdout > 0 && (i % static_cast<std::size_t>(holdout)) == static_cast<std::size_t>(holdout - 1)});
    } catch (const input_error& e) {
      out.skipped.push_back(fmt::format("{}: {}", log.path, e.what()));
    }
  }
  // The GPU as each log saw it: its logged total stands in for the catalog's.
  const auto coefficients_for = [&](const vllm_log& log, const engine_profile& p) {
    coefficients c = defaults;
    if (log.total_memory_gib)
      c.usable_memory_bytes = static_cast<std::int64_t>(std::llround(*log.total_memory_gib * static_cast<double>(gib_bytes)));
    c.memory = p.with_fits(c.memory);
    return c;
  };

  // Activation: the profile run's torch peak against the model's forward and sampler peak.
  std::vector<activation_point> points;
  std::vector<double> non_torch_tp1;
  std::vector<double> non_torch_tp;  // at tp > 1
  for (const usable& u : all) {
    if (u.held_out || u.log->workers.empty()) continue;
    if (u.log->pp > 1) {
      out.skipped.push_back(fmt::format("{}: pipeline parallel (pp = {}): not used by the fit", u.log->path, u.log->pp));
      continue;
    }
    try {
      const estimate_options o = options_of(*u.log);
      const coefficients c = coefficients_for(*u.log, base);
      const resolved_settings s =
          resolve_settings(u.m, gpu, base, o, c.usable_memory_bytes.value_or(gpu.cuda_total_memory_bytes.value_or(gpu.memory_bytes)));
      memory_coefficients unit = c.memory;
      unit.activation_scale.value = 1;
      unit.activation_fixed_bytes.value = 0;
      const std::int64_t rows = std::min(s.max_num_seqs, s.max_num_batched_tokens);
      const activation_estimate a = estimate_activation(u.m, s, base, unit, s.max_num_batched_tokens, rows);
      double peak = 0, nt = 0;
      for (const auto& w : u.log->workers) {
        peak = std::max(peak, w.activation_gib);
        nt = std::max(nt, w.non_torch_gib);
      }
      points.push_back({s.max_num_batched_tokens, rows, a.forward_bytes, a.sampler_bytes, peak * static_cast<double>(gib_bytes)});
      if (u.log->tp == 1) non_torch_tp1.push_back(nt * static_cast<double>(gib_bytes));
      else non_torch_tp.push_back(nt * static_cast<double>(gib_bytes));
    } catch (const input_error& e) {
      out.skipped.push_back(fmt::format("{}: {}", u.log->path, e.what()));
    }
  }
  const std::string from = fmt::format("fitted by gpucal fit-engine to {} vLLM {} startup logs on {}", points.size(),
                                       logs.empty() ? "" : logs.front().version, gpu.slug);
  try {
    const activation_fit af = fit_activation(points, "vllm startup logs");
    out.fitted["activation_scale"] = {af.scale.value, "fitted", from + ": torch peak memory increase of the profile run"};
    out.fitted["activation_fixed_bytes"] = {af.fixed_bytes.value, "fitted", from + ": torch peak memory increase of the profile run"};
    out.fits.push_back(af.result);
  } catch (const std::exception& e) {
    out.skipped.push_back(fmt::format("activation: not fitted ({})", e.what()));
  }
  if (!non_torch_tp1.empty()) {
    const double nt1 = median_of(non_torch_tp1);
    out.fitted["non_torch_bytes"] = {nt1, "fitted", from + ": median non-torch forward increase at tp = 1"};
    out.fits.push_back(spread_fit("non_torch/tp1", "median of the logs' non-torch increase", non_torch_tp1, nt1));
    if (!non_torch_tp.empty()) {
      std::vector<double> above;
      for (const double nt : non_torch_tp) above.push_back(std::max(0.0, nt - nt1));
      const double nccl = median_of(above);
      out.fitted["nccl_bytes_per_gpu"] = {nccl, "fitted",
                                          from + ": median non-torch forward increase at tp > 1 above the tp = 1 median (NCCL's "
                                                 "lazily connected buffers)"};
      out.fits.push_back(spread_fit("nccl/tp>1", "median of the logs' non-torch increase above tp = 1", above, nccl));
    }
  } else {
    out.skipped.push_back("non-torch: no tp = 1 log to fit it on");
  }

  // Every log, predicted with the fitted profile.
  engine_profile fitted = base;
  for (const auto& [k, v] : out.fitted) fitted.fitted[k] = v;
  for (const usable& u : all) {
    if (u.log->pp > 1) continue;
    try {
      const coefficients c = coefficients_for(*u.log, fitted);
      const memory_estimate e = estimate_memory(u.m, gpu, fitted, c, options_of(*u.log));
      engine_log_check k;
      k.path = u.log->path;
      k.model = u.log->model;
      k.tp = u.log->tp;
      k.pp = u.log->pp;
      k.held_out = u.held_out;
      k.measured_kv_gib = *u.log->available_kv_gib;
      k.predicted_kv_gib = to_gib(e.kv_pool_bytes);
      if (u.log->kv_tokens) {
        k.measured_tokens = static_cast<double>(*u.log->kv_tokens);
        k.predicted_tokens = static_cast<double>(e.max_tokens);
      }
      if (k.measured_kv_gib > 0) out.checks.push_back(k);
    } catch (const input_error& e) {
      out.skipped.push_back(fmt::format("{}: {}", u.log->path, e.what()));
    }
  }
  return out;
}

kv_error_stats engine_log_fit::kv_error(bool held_out) const {
  std::vector<double> v;
  for (const auto& c : checks)
    if (c.held_out == held_out) v.push_back(std::fabs(c.error_pct()));
  kv_error_stats s;
  s.logs = v.size();
  if (!v.empty()) {
    s.median_pct = median_of(v);
    s.max_pct = *std::max_element(v.begin(), v.end());
  }
  return s;
}

}  // namespace gpucal::model
