// Calibration files: parse and validate, serialize, write atomically, find
// the newest one for a GPU (see calibration.hpp and results/SCHEMA.md).
#include "gpucal/model/calibration.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "detail/coefficients_json.hpp"
#include "detail/json_fields.hpp"
#include "gpucal/model/catalog.hpp"
#include "gpucal/model/files.hpp"

namespace gpucal::model {

namespace {

using detail::field_reader;
using detail::json;
namespace fs = std::filesystem;

constexpr const char* schema_name = "gpucal.calibration/1";

std::map<std::string, double> read_number_map(const field_reader& parent, const char* key, bool required) {
  std::map<std::string, double> out;
  if (!parent.has(key)) {
    if (required) parent.fail(key, "is missing");
    return out;
  }
  field_reader r = parent.child(key);
  for (const auto& [k, v] : parent.object(key).items()) {
    (void)v;
    out[k] = r.number_in(k.c_str(), -1e300, 1e300);
  }
  return out;
}

json finite_or_throw(double v, const std::string& what) {
  if (!std::isfinite(v)) throw std::invalid_argument("calibration: " + what + " is not finite");
  return v;
}

json number_map_json(const std::map<std::string, double>& m, const std::string& what) {
  json j = json::object();
  for (const auto& [k, v] : m) j[k] = finite_or_throw(v, what + "." + k);
  return j;
}

}  // namespace

double measurement::median() const { return median_of(samples); }

std::string utc_now_iso8601() {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

double median_of(std::vector<double> v) {
  if (v.empty()) return NAN;
  const std::size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + static_cast<long>(mid), v.end());
  if (v.size() % 2) return v[mid];
  const double hi = v[mid];
  return (hi + *std::max_element(v.begin(), v.begin() + static_cast<long>(mid))) / 2;
}

const measurement* calibration_file::find(const std::string& name) const {
  for (const auto& m : measurements)
    if (m.name == name) return &m;
  return nullptr;
}

calibration_file parse_calibration(std::string_view json_text, std::string_view where) {
  const json root = detail::parse_json_text(json_text, where);
  field_reader top(root, std::string(where));
  const std::string schema = top.string("schema");
  if (schema != schema_name)
    top.fail("schema", fmt::format("is '{}' (this gpucal reads {})", schema, schema_name));
  calibration_file c;
  field_reader producer = top.child("producer");
  c.tool_version = producer.string("version");
  c.git_commit = producer.string("git_commit");
  c.dirty = producer.boolean_or("dirty", false);
  c.created_utc = top.string("created_utc");
  if (c.created_utc.size() < 20 || c.created_utc[4] != '-' || c.created_utc[10] != 'T' || c.created_utc.back() != 'Z')
    top.fail("created_utc", fmt::format("must be an ISO 8601 UTC time like 2026-11-24T21:00:00Z, got '{}'", c.created_utc));

  field_reader dev = top.child("device");
  c.device.name = dev.string("name");
  c.device.sku = dev.string("sku");
  if (const gpu_spec* g = find_gpu(c.device.sku); !g || g->slug != c.device.sku)
    dev.fail("sku", fmt::format("'{}' is not the slug of a GPU in the catalog{} (`gpucal gpus` lists them)", c.device.sku,
                                g ? fmt::format(" (did you mean '{}'?)", g->slug) : ""));
  c.device.compute_capability = dev.string("compute_capability");
  c.device.sm_count = dev.positive_int("sm_count");
  c.device.total_memory_bytes = dev.positive_int("total_memory_bytes");
  c.device.driver_version = dev.string("driver_version");
  c.device.cuda_runtime = dev.string("cuda_runtime");
  c.device.clocks_start = read_number_map(dev, "clocks_start", false);
  c.device.clocks_end = read_number_map(dev, "clocks_end", false);

  std::set<std::string> names;
  const json& ms = top.array("measurements");
  for (std::size_t i = 0; i < ms.size(); ++i) {
    field_reader r(ms[i], fmt::format("{}: measurements[{}]", where, i));
    measurement m;
    m.name = r.string("name");
    if (!names.insert(m.name).second) r.fail("name", fmt::format("'{}' appears twice", m.name));
    m.unit = r.string("unit");
    static const std::set<std::string> units = {"us", "bytes", "GB/s", "TFLOP/s"};
    if (!units.contains(m.unit)) r.fail("unit", fmt::format("is '{}' (allowed: us, bytes, GB/s, TFLOP/s)", m.unit));
    m.params = read_number_map(r, "params", false);
    if (r.has("labels"))
      for (const auto& [k, v] : r.object("labels").items()) {
        if (!v.is_string()) r.fail("labels", fmt::format("entry '{}' must be a string", k));
        m.labels[k] = v.get<std::string>();
      }
    const json& samples = r.array("samples");
    if (samples.empty()) r.fail("samples", "must hold at least one sample");
    for (std::size_t s = 0; s < samples.size(); ++s) {
      // Times, sizes and rates are never negative; NaN arrives as null or a string.
      if (!samples[s].is_number() || !std::isfinite(samples[s].get<double>()) || samples[s].get<double>() < 0)
        r.fail("samples", fmt::format("[{}] must be a finite number >= 0, got {}", s, detail::shown(samples[s])));
      m.samples.push_back(samples[s].get<double>());
    }
    c.measurements.push_back(std::move(m));
  }

  if (top.has("fits")) {
    const json& fs_json = top.array("fits");
    for (std::size_t i = 0; i < fs_json.size(); ++i) {
      field_reader r(fs_json[i], fmt::format("{}: fits[{}]", where, i));
      fit_result f;
      f.name = r.string("name");
      f.model = r.string("model");
      f.params = read_number_map(r, "params", true);
      f.points = static_cast<int>(r.dim("points", 1 << 30));
      f.residual_max_rel = r.number_in("residual_max_rel", 0, 1e6);
      f.residual_rms_rel = r.number_in("residual_rms_rel", 0, 1e6);
      c.fits.push_back(std::move(f));
    }
  }
  c.coeffs = detail::read_coefficients(top.child("coefficients"), fmt::format("calibration {}", where));
  return c;
}

calibration_file load_calibration(const std::string& path, std::string_view what) {
  return parse_calibration(read_input_file(path, what), path);
}

std::string calibration_to_json(const calibration_file& c) {
  json j;
  j["schema"] = schema_name;
  j["producer"] = {{"tool", "gpucal"}, {"version", c.tool_version}, {"git_commit", c.git_commit}, {"dirty", c.dirty}};
  j["created_utc"] = c.created_utc;
  j["device"] = {{"name", c.device.name},
                 {"sku", c.device.sku},
                 {"compute_capability", c.device.compute_capability},
                 {"sm_count", c.device.sm_count},
                 {"total_memory_bytes", c.device.total_memory_bytes},
                 {"driver_version", c.device.driver_version},
                 {"cuda_runtime", c.device.cuda_runtime},
                 {"clocks_start", number_map_json(c.device.clocks_start, "device.clocks_start")},
                 {"clocks_end", number_map_json(c.device.clocks_end, "device.clocks_end")}};
  json ms = json::array();
  for (const auto& m : c.measurements) {
    json samples = json::array();
    for (double s : m.samples) samples.push_back(finite_or_throw(s, m.name + " sample"));
    ms.push_back({{"name", m.name}, {"unit", m.unit}, {"params", number_map_json(m.params, m.name)},
                  {"labels", m.labels}, {"samples", samples}});
  }
  j["measurements"] = ms;
  json fits = json::array();
  for (const auto& f : c.fits)
    fits.push_back({{"name", f.name}, {"model", f.model}, {"params", number_map_json(f.params, f.name)},
                    {"points", f.points}, {"residual_max_rel", finite_or_throw(f.residual_max_rel, f.name)},
                    {"residual_rms_rel", finite_or_throw(f.residual_rms_rel, f.name)}});
  j["fits"] = fits;
  j["coefficients"] = detail::coefficients_json(c.coeffs);
  return j.dump(2) + "\n";
}

std::string calibration_file_name(const calibration_file& c) {
  // <driver>_cuda<runtime>_<utc date>.json, e.g. 580.159.04_cuda13.0_2026-11-24.json
  return fmt::format("{}_cuda{}_{}.json", c.device.driver_version, c.device.cuda_runtime, c.created_utc.substr(0, 10));
}

std::string checked_calibration_json(const calibration_file& c, std::string_view where) {
  std::string text;
  try {
    text = calibration_to_json(c);
  } catch (const std::invalid_argument& e) {
    throw input_error(fmt::format("{}: not written: {}", where, e.what()));
  }
  try {
    (void)parse_calibration(text, where);
  } catch (const input_error& e) {
    throw input_error(fmt::format("not written, the calibration is invalid: {}", e.what()));
  }
  return text;
}

std::string write_calibration(const calibration_file& c, const std::string& folder, const std::string& stem) {
  if (folder.empty()) throw input_error("--out: the folder is empty");
  const fs::path first = fs::path(folder) / (stem + ".json");
  const std::string text = checked_calibration_json(c, first.string());
  std::vector<std::string> candidates{first.string()};
  for (int n = 2; n <= 999; ++n) candidates.push_back((fs::path(folder) / fmt::format("{}-{}.json", stem, n)).string());
  return write_new_file(candidates, text, "--out");
}

namespace {

// Raw Google Benchmark JSON (bench.json, bench_<time>.json) lives beside the calibrations.
bool is_raw_benchmark(const fs::path& p) { return p.filename().string().starts_with("bench"); }

}  // namespace

std::optional<std::string> newest_calibration(const std::string& results_dir, const std::string& sku) {
  const fs::path dir = fs::path(results_dir) / sku;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return std::nullopt;
  std::optional<std::string> best;
  std::string best_time, best_name;
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (entry.path().extension() == ".json" && !is_raw_benchmark(entry.path())) files.push_back(entry.path());
  if (ec) throw input_error(fmt::format("results folder '{}': cannot list it ({})", dir.string(), ec.message()));
  for (const auto& path : files) {
    calibration_file c;
    try {
      c = load_calibration(path.string());
    } catch (const input_error& e) {
      throw input_error(fmt::format("{} (every .json file of {} but bench*.json must be a calibration: fix or move it, "
                                    "or pass --calibration)", e.what(), dir.string()));
    }
    if (c.device.sku != sku)
      throw input_error(fmt::format("{}: device.sku is '{}' but the file lies in the folder of {} (move it to {})",
                                    path.string(), c.device.sku, sku, (fs::path(results_dir) / c.device.sku).string()));
    const std::string name = path.filename().string();
    if (!best || c.created_utc > best_time || (c.created_utc == best_time && name > best_name)) {
      best = path.string();
      best_time = c.created_utc;
      best_name = name;
    }
  }
  return best;
}

coefficient_choice coefficients_for_gpu(const std::optional<std::string>& flag_path, const gpu_spec& gpu,
                                        const std::string& results_dir, bool allow_other_gpu) {
  coefficient_choice out;
  if (!flag_path) {
    if (const auto newest = newest_calibration(results_dir, gpu.slug)) {
      out.coeffs = load_calibration(*newest).coeffs;
      out.path = *newest;
    } else {
      out.coeffs = default_coefficients();  // source "default": nothing measured for this GPU yet
    }
    return out;
  }
  const std::string& path = *flag_path;
  const std::string text = read_input_file(path, "--calibration");
  const json root = detail::parse_json_text(text, path);
  out.path = path;
  if (!root.is_object() || !root.contains("schema") || root.at("schema") != schema_name) {
    out.coeffs = parse_coefficients(text, path);  // a GPU-neutral coefficients file, or the error naming the schema
    return out;
  }
  const calibration_file c = parse_calibration(text, path);
  out.coeffs = c.coeffs;
  if (c.device.sku != gpu.slug) {
    if (!allow_other_gpu)
      throw input_error(fmt::format("--calibration: '{}' was measured on {}, not on {} (pass --allow-other-gpu-calibration "
                                    "to apply its efficiencies anyway)", path, c.device.sku, gpu.slug));
    out.coeffs.usable_memory_bytes.reset();
    out.warnings.push_back(fmt::format("coefficients measured on {} ({}) applied to {} as asked by "
                                       "--allow-other-gpu-calibration; the memory total is {}'s own",
                                       c.device.sku, path, gpu.slug, gpu.slug));
  }
  return out;
}

}  // namespace gpucal::model
