// Calibration-file commands (see calibration_commands.hpp).
#include "calibration_commands.hpp"

#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "gpucal/model/bench_json.hpp"
#include "gpucal/model/calibration.hpp"
#include "gpucal/model/engine_log.hpp"
#include "gpucal/model/catalog.hpp"
#include "gpucal/model/errors.hpp"
#include "gpucal/model/files.hpp"
#include "gpucal/model/fit.hpp"
#include "gpucal/model/limits.hpp"
#include "gpucal/model/regression.hpp"

#ifndef GPUCAL_DEFAULT_RESULTS_DIR
#define GPUCAL_DEFAULT_RESULTS_DIR "results"
#endif
#ifndef GPUCAL_VERSION
#define GPUCAL_VERSION "0.0.0"
#endif
#ifndef GPUCAL_GIT_COMMIT
#define GPUCAL_GIT_COMMIT "unknown"
#endif

namespace gpucal::cli {

namespace fs = std::filesystem;

namespace {

std::string results_dir() {
  const char* env = std::getenv("GPUCAL_RESULTS_DIR");
  return env && *env ? env : GPUCAL_DEFAULT_RESULTS_DIR;
}

std::string headline(const model::calibration_file& c, const char* name) {
  const model::measurement* m = c.find(name);
  return m ? fmt::format("{:.1f}", m->median()) : "-";
}

}  // namespace

model::coefficient_choice coefficients_for(const std::string& calibration_flag, const model::gpu_spec& gpu,
                                           bool allow_other_gpu) {
  return model::coefficients_for_gpu(calibration_flag.empty() ? std::nullopt : std::optional<std::string>(calibration_flag),
                                     gpu, results_dir(), allow_other_gpu);
}

int run_fit(const std::string& bench_path, const std::string& gpu_name, const std::string& out_dir, bool json,
            std::ostream& out) {
  if (out_dir.empty()) throw input_error("--out: the folder is empty (default: results)");
  const model::gpu_spec& gpu = model::resolve_gpu(gpu_name);
  const std::string text = model::read_input_file(bench_path, "--bench");
  model::calibration_file c =
      model::calibration_from_benchmarks(text, bench_path, gpu, model::utc_now_iso8601(), GPUCAL_VERSION, GPUCAL_GIT_COMMIT);
  const std::string path = model::write_calibration(c, (fs::path(out_dir) / gpu.slug).string(),
                                                    fs::path(model::calibration_file_name(c)).stem().string());
  if (json) {
    out << nlohmann::json{{"path", path}, {"measurements", c.measurements.size()}, {"fits", c.fits.size()}}.dump(2) << "\n";
    return 0;
  }
  out << fmt::format("wrote {} ({} measurements)\n", path, c.measurements.size());
  for (const auto& f : c.fits)
    out << fmt::format("  fit {:<18} {:>4} points  residual max {:.1f}%  rms {:.1f}%\n", f.name, f.points,
                       100 * f.residual_max_rel, 100 * f.residual_rms_rel);
  return 0;
}

int run_merge_bench(const std::vector<std::string>& inputs, const std::string& out_path, std::ostream& out) {
  if (out_path.empty()) throw input_error("--out: the path is empty");
  std::vector<std::pair<std::string, std::string>> documents;
  for (const auto& path : inputs) documents.emplace_back(path, model::read_input_file(path, "merge-bench"));
  const model::bench_merge m = model::merge_bench_json(documents);
  model::write_file_atomic(out_path, m.json, "--out");
  for (const auto& note : m.notes) out << "  " << note << "\n";
  out << fmt::format("wrote {} ({} runs from {} file(s))\n", out_path, m.runs, inputs.size());
  return 0;
}

int run_fit_engine(const fit_engine_args& a, std::ostream& out) {
  if (a.out.empty()) throw input_error("--out: the path is empty");
  if (a.holdout < 0 || a.holdout > 1000) throw input_error(fmt::format("--holdout: {} is outside [0, 1000]", a.holdout));
  const model::gpu_spec& gpu = model::resolve_gpu(a.gpu);
  std::map<std::string, std::string> names;
  for (const auto& m : a.model_for) {
    const auto eq = m.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == m.size())
      throw input_error(fmt::format("--model-for: '{}' is not REPO=MODEL (e.g. meta-llama/Llama-3.1-8B-Instruct=llama-3.1-8b)", m));
    names[m.substr(0, eq)] = m.substr(eq + 1);
  }
  std::vector<model::vllm_log> logs;
  for (const auto& path : a.logs) logs.push_back(model::parse_vllm_log(model::read_input_file(path, "--vllm-log"), path));
  // The profile of the logs' version unless --base names one.
  std::string base_name = a.base;
  if (base_name.empty()) {
    const std::string& v = logs.front().version;
    base_name = "vllm@" + v.substr(0, v.find('.', v.find('.') + 1));
    try {
      (void)model::resolve_engine(base_name);
    } catch (const input_error&) {
      throw input_error(fmt::format("--base: no vLLM profile for version {} of '{}' (`gpucal engines` lists them; pass --base)", v,
                                    logs.front().path));
    }
  }
  const model::engine_profile base = model::resolve_engine(base_name);
  if (base.engine != "vllm") throw input_error(fmt::format("--base: '{}' is a {} profile; the logs are vLLM's", base_name, base.engine));
  const auto resolve = [&](const std::string& repo) {
    const auto it = names.find(repo);
    return model::resolve_model(it != names.end() ? it->second : repo);
  };
  const model::engine_log_fit f = model::fit_engine_to_logs(logs, base, gpu, model::default_coefficients(), a.holdout, resolve);
  if (f.checks.empty()) throw input_error("--vllm-log: no log could be predicted (see the models named with --model-for)");

  // The base profile's JSON with the fitted terms and where they came from.
  const auto [text, where] = model::engine_profile_text(base_name);
  std::vector<std::string> log_paths;
  for (const auto& l : logs) log_paths.push_back(l.path);
  const std::string json_text = model::fitted_profile_json(text, where, f.fitted, log_paths, gpu.slug);
  (void)model::parse_engine_profile(json_text, a.out);  // what --engine will read back
  model::write_file_atomic(a.out, json_text, "--out");

  const model::kv_error_stats fit_err = f.kv_error(false), held_err = f.kv_error(true);
  if (a.json) {
    nlohmann::ordered_json j;
    j["out"] = a.out;
    j["base"] = base.label();
    j["fitted"] = nlohmann::ordered_json::parse(json_text)["fitted"];  // as written
    nlohmann::ordered_json fits = nlohmann::ordered_json::array();
    for (const auto& r : f.fits)
      fits.push_back({{"name", r.name}, {"points", r.points}, {"residual_max_rel", r.residual_max_rel}, {"residual_rms_rel", r.residual_rms_rel}});
    j["fits"] = fits;
    nlohmann::ordered_json checks = nlohmann::ordered_json::array();
    for (const auto& c : f.checks)
      checks.push_back({{"log", c.path}, {"model", c.model}, {"tp", c.tp}, {"held_out", c.held_out}, {"measured_kv_gib", c.measured_kv_gib},
                        {"predicted_kv_gib", c.predicted_kv_gib}, {"error_pct", c.error_pct()}});
    j["logs"] = checks;
    j["kv_error_pct"] = {{"fit_median", fit_err.median_pct}, {"fit_max", fit_err.max_pct},
                         {"held_out_median", held_err.median_pct}, {"held_out_max", held_err.max_pct},
                         {"fit_logs", fit_err.logs}, {"held_out_logs", held_err.logs}};
    j["skipped"] = f.skipped;
    out << j.dump(2) << "\n";
    return 0;
  }
  out << fmt::format("wrote {} ({} fitted to {} logs)\n", a.out, base.label(), logs.size());
  for (const auto& [k, c] : f.fitted) out << fmt::format("  {:<24} {:>16.6g}\n", k, c.value);
  for (const auto& r : f.fits)
    out << fmt::format("  fit {:<20} {:>4} points  residual max {:.1f}%  rms {:.1f}%\n", r.name, r.points, 100 * r.residual_max_rel,
                       100 * r.residual_rms_rel);
  out << fmt::format("{:<48} {:>3} {:>10} {:>10} {:>8}\n", "log (model)", "tp", "KV GiB", "predicted", "error");
  for (const auto& c : f.checks)
    out << fmt::format("{:<48} {:>3} {:>10.2f} {:>10.2f} {:>+7.2f}%{}\n", c.model.substr(0, 48), c.tp, c.measured_kv_gib,
                       c.predicted_kv_gib, c.error_pct(), c.held_out ? "  held out" : "");
  out << fmt::format("available KV error: fit median {:.2f}% max {:.2f}% ({} logs); held out median {:.2f}% max {:.2f}% ({} logs)\n",
                     fit_err.median_pct, fit_err.max_pct, fit_err.logs, held_err.median_pct, held_err.max_pct, held_err.logs);
  for (const auto& s : f.skipped) out << "  skipped: " << s << "\n";
  return 0;
}

int run_compare(const std::string& old_path, const std::string& new_path, double threshold_pct, double alpha, bool json,
                std::ostream& out) {
  if (!(threshold_pct >= 0 && threshold_pct <= model::limits::threshold_pct))
    throw input_error(fmt::format("--threshold: {} is outside [0, {:g}] (percent)", threshold_pct, model::limits::threshold_pct));
  if (!(alpha > 0 && alpha < 1)) throw input_error(fmt::format("--alpha: {} must be in (0, 1)", alpha));
  const model::calibration_file a = model::load_calibration(old_path, "compare (old)");
  const model::calibration_file b = model::load_calibration(new_path, "compare (new)");
  const model::comparison cmp = model::compare_calibrations(a, b, threshold_pct, alpha);
  if (json) {
    nlohmann::ordered_json j;
    j["old"] = old_path;
    j["new"] = new_path;
    j["threshold_pct"] = threshold_pct;
    j["alpha"] = alpha;
    j["test"] = "two-sided Mann-Whitney U";
    nlohmann::ordered_json rows = nlohmann::ordered_json::array();
    for (const auto& m : cmp.changes)
      rows.push_back({{"name", m.name}, {"unit", m.unit}, {"old_median", m.old_median}, {"new_median", m.new_median},
                      {"change_pct", m.change_pct}, {"p", m.p}, {"significant", m.significant},
                      {"regression", m.regression}, {"improvement", m.improvement}});
    j["metrics"] = rows;
    j["only_old"] = cmp.only_old;
    j["only_new"] = cmp.only_new;
    j["regressions"] = cmp.regressions;
    out << j.dump(2) << "\n";
  } else {
    out << fmt::format("compare: {} ({} {}) -> {} ({} {}); threshold {:g}%, Mann-Whitney p < {:g}\n", old_path,
                       a.device.driver_version, a.device.cuda_runtime, new_path, b.device.driver_version,
                       b.device.cuda_runtime, threshold_pct, alpha);
    for (const auto& m : cmp.changes) {
      const char* verdict = m.regression ? "REGRESSION" : m.improvement ? "improved" : m.significant ? "changed" : "";
      out << fmt::format("  {:<48} {:>12.3f} {:>12.3f} {:<7} {:>+7.2f}%  p={:.3g} {}\n", m.name, m.old_median,
                         m.new_median, m.unit, m.change_pct, m.p, verdict);
    }
    for (const auto& n : cmp.only_old) out << fmt::format("  only in old: {}\n", n);
    for (const auto& n : cmp.only_new) out << fmt::format("  only in new: {}\n", n);
    out << fmt::format("{} significant regression(s) beyond {:g}%, {} improvement(s)\n", cmp.regressions, threshold_pct,
                       cmp.improvements);
  }
  return cmp.regressions > 0 ? 1 : 0;
}

int run_history(const std::string& dir, std::ostream& out) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw input_error(fmt::format("history: '{}' is not a folder", dir));
  std::vector<std::pair<std::string, model::calibration_file>> files;
  std::vector<std::string> invalid;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    // Raw benchmark JSON (bench*.json) lives beside the calibration files.
    if (e.path().extension() != ".json" || e.path().filename().string().starts_with("bench")) continue;
    try {
      files.emplace_back(e.path().filename().string(), model::load_calibration(e.path().string()));
    } catch (const input_error& err) {
      invalid.push_back(err.what());
    }
  }
  if (ec) throw input_error(fmt::format("history: cannot list '{}' ({})", dir, ec.message()));
  std::sort(invalid.begin(), invalid.end());
  std::sort(files.begin(), files.end(), [](const auto& x, const auto& y) { return x.second.created_utc < y.second.created_utc; });
  out << fmt::format("{:<22} {:<14} {:<6} {:>12} {:>16}  {}\n", "created (UTC)", "driver", "CUDA", "copy GB/s",
                     "bf16 8192^3 us", "file");
  for (const auto& [name, c] : files)
    out << fmt::format("{:<22} {:<14} {:<6} {:>12} {:>16}  {}\n", c.created_utc, c.device.driver_version,
                       c.device.cuda_runtime, headline(c, "bandwidth/copy/bytes=4294967296"),
                       headline(c, "gemm/bf16/square.8192/m=8192"), name);
  if (files.empty()) out << "(no calibration files)\n";
  for (const auto& why : invalid) out << "invalid: " << why << "\n";
  return 0;
}

int run_export(const std::string& format, const std::string& path, const std::string& out_dir, std::ostream& out) {
  if (format != "llm-analysis" && format != "csv")
    throw input_error(fmt::format("--format: '{}' is not supported (allowed: llm-analysis, csv)", format));
  if (out_dir.empty()) throw input_error("--out: the folder is empty (default: the current folder, .)");
  const model::calibration_file c = model::load_calibration(path, "export");
  const model::gpu_spec& gpu = model::resolve_gpu(c.device.sku);
  const auto& t = c.coeffs.throughput;
  if (format == "csv") {
    std::string csv = "name,dtype,shape,m,n,k,median_us,tflops,samples\n";
    for (const auto& m : c.measurements) {
      if (!m.labels.count("kind") || m.labels.at("kind") != "gemm") continue;
      const double flops = 2 * m.params.at("m") * m.params.at("n") * m.params.at("k");
      csv += fmt::format("{},{},{},{},{},{},{:.4f},{:.3f},{}\n", m.name, m.labels.at("dtype"), m.labels.at("shape"),
                         m.params.at("m"), m.params.at("n"), m.params.at("k"), m.median(),
                         flops / (m.median() * 1e-6) / 1e12, m.samples.size());
    }
    const std::string file = (fs::path(out_dir) / (c.device.sku + ".gemm.csv")).string();
    model::write_file_atomic(file, csv, "--out");
    out << file << "\n";
    return 0;
  }
  // llm-analysis GPUConfig: exactly its keys (llm_analysis/gpu_configs/*.json).
  const auto peak = [&gpu](const char* k) { return gpu.peak_tflops.count(k) ? gpu.peak_tflops.at(k) : 0.0; };
  const double i8 = peak("int8");
  nlohmann::ordered_json cfg;
  cfg["name"] = c.device.sku;
  cfg["mem_per_GPU_in_GB"] = static_cast<double>(c.device.total_memory_bytes) / (1ull << 30);
  cfg["hbm_bandwidth_in_GB_per_sec"] = gpu.hbm_bandwidth_gbps;
  cfg["intra_node_bandwidth_in_GB_per_sec"] = gpu.nvlink_gbps.value_or(gpu.pcie_gbps.value_or(0));
  cfg["intra_node_min_message_latency"] = t.allreduce_latency_us.value * 1e-6;
  cfg["peak_fp16_TFLOPS"] = peak(peak("bf16") > 0 ? "bf16" : "fp16");
  cfg["peak_i8_TFLOPS"] = i8;
  cfg["peak_i4_TFLOPS"] = peak("int4") > 0 ? peak("int4") : 2 * i8;
  cfg["inter_node_bandwidth_in_GB_per_sec"] = gpu.pcie_gbps.value_or(0);
  // The efficiencies llm-analysis takes as flags, from this calibration.
  const auto& bf16 = t.curve("bf16");
  nlohmann::ordered_json eff;
  eff["flops_efficiency"] = bf16.compute_efficiency.back();
  eff["hbm_memory_efficiency"] = t.hbm_efficiency.value;
  eff["intra_node_memory_efficiency"] = t.allreduce_efficiency.value;
  eff["sources"] = {{"flops_efficiency", fmt::format("bf16 GEMM compute efficiency at M = {:g} ({})", bf16.m.back(), bf16.source)},
                    {"hbm_memory_efficiency", t.hbm_efficiency.source},
                    {"intra_node_memory_efficiency", t.allreduce_efficiency.source},
                    {"peak_i4_TFLOPS", peak("int4") > 0 ? "datasheet" : "2 x the int8 peak (no int4 figure in gpus.json)"},
                    {"inter_node_bandwidth_in_GB_per_sec", "PCIe per direction (gpucal models no inter-node link)"},
                    {"calibration", path}};
  const std::string cfg_file = (fs::path(out_dir) / (c.device.sku + ".json")).string();
  const std::string eff_file = (fs::path(out_dir) / (c.device.sku + ".efficiencies.json")).string();
  model::write_files_together({{cfg_file, cfg.dump(4) + "\n"}, {eff_file, eff.dump(2) + "\n"}}, "--out");
  out << cfg_file << "\n" << eff_file << "\n";
  return 0;
}

int run_show(const std::string& path, std::ostream& out) {
  const model::calibration_file c = model::load_calibration(path, "show");
  out << fmt::format("{}: {} ({}), sm_{}, {} SMs, {:.2f} GiB, driver {}, CUDA {}\n", path, c.device.name, c.device.sku,
                     c.device.compute_capability, c.device.sm_count,
                     static_cast<double>(c.device.total_memory_bytes) / (1ull << 30), c.device.driver_version,
                     c.device.cuda_runtime);
  out << fmt::format("created {} by gpucal {} ({}{})\n", c.created_utc, c.tool_version, c.git_commit, c.dirty ? ", dirty" : "");
  out << fmt::format("{} measurements; fits:\n", c.measurements.size());
  for (const auto& f : c.fits) {
    out << fmt::format("  {:<18} {:>4} points  residual max {:.1f}%  rms {:.1f}%\n", f.name, f.points,
                       100 * f.residual_max_rel, 100 * f.residual_rms_rel);
  }
  const auto& t = c.coeffs.throughput;
  out << fmt::format("coefficients: hbm_efficiency {:.3f} ({}), decode_attention_efficiency {:.3f} ({})\n",
                     t.hbm_efficiency.value, t.hbm_efficiency.source, t.decode_attention_efficiency.value,
                     t.decode_attention_efficiency.source);
  for (const auto& [kind, curve] : t.gemm) {
    std::string effs;
    for (std::size_t i = 0; i < curve.m.size(); ++i) effs += fmt::format(" m{}={:.2f}", curve.m[i], curve.compute_efficiency[i]);
    out << fmt::format("  gemm {:<6} ({}) memory {:.2f};{}\n", kind, curve.source, curve.memory_efficiency, effs);
  }
  return 0;
}

}  // namespace gpucal::cli
