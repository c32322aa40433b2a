// Lookups in the embedded catalogs. Model entries wrap a verbatim
// config.json with its name, aliases and source; the GPU list, engine
// profiles and default coefficients are parsed once on first use.
#include "gpucal/model/catalog.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "detail/json_fields.hpp"
#include "gpucal/model/detail/embedded_files.hpp"
#include "gpucal/model/files.hpp"

namespace gpucal::model {

namespace {

using detail::field_reader;
using detail::json;

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view embedded(std::string_view path) {
  for (const auto& f : detail::embedded_files())
    if (f.path == path) return f.text;
  throw std::logic_error(fmt::format("embedded catalog file '{}' is missing from the build", path));
}

struct model_record {
  model_entry entry;
  std::string path;              // embedded path
  std::vector<std::string> keys;  // lowercase names that select it
};

const std::vector<model_record>& model_records() {
  static const std::vector<model_record> records = [] {
    std::vector<model_record> out;
    for (const auto& f : detail::embedded_files()) {
      if (!f.path.starts_with("models/") || !f.path.ends_with(".json")) continue;
      const json root = detail::parse_json_text(f.text, f.path);
      field_reader r(root, std::string(f.path));
      model_record rec;
      rec.path = std::string(f.path);
      rec.entry.name = r.string("name");
      rec.entry.hf_repo = r.string_or("hf_repo", "");
      rec.entry.source = r.string("source");
      rec.entry.aliases = r.string_list("aliases");
      rec.keys.push_back(lower(rec.entry.name));
      const std::string stem = std::filesystem::path(rec.path).stem().string();
      rec.keys.push_back(lower(stem));
      for (const auto& a : rec.entry.aliases) rec.keys.push_back(lower(a));
      if (!rec.entry.hf_repo.empty()) rec.keys.push_back(lower(rec.entry.hf_repo));
      out.push_back(std::move(rec));
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.entry.name < b.entry.name; });
    return out;
  }();
  return records;
}

}  // namespace

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string nearest_name(std::string_view query, const std::vector<std::string>& candidates) {
  const std::string q = lower(query);
  std::string best;
  std::size_t best_d = static_cast<std::size_t>(-1);
  for (const auto& c : candidates) {
    const std::size_t d = edit_distance(q, lower(c));
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

std::vector<model_entry> list_models() {
  std::vector<model_entry> out;
  for (const auto& r : model_records()) out.push_back(r.entry);
  return out;
}

namespace {

// The ModelOpt hf_quant_config.json that belongs to a config file: beside a
// config.json in a checkpoint folder, or <prefix>_hf_quant_config.json beside
// <prefix>_config.json (the layout of collected config files).
std::optional<std::string> quant_config_beside(const std::filesystem::path& config) {
  const std::string file = config.filename().string();
  std::vector<std::filesystem::path> candidates;
  if (file == "config.json") candidates.push_back(config.parent_path() / "hf_quant_config.json");
  if (file.ends_with("_config.json"))
    candidates.push_back(config.parent_path() / (file.substr(0, file.size() - 12) + "_hf_quant_config.json"));
  std::error_code ec;
  for (const auto& c : candidates)
    if (std::filesystem::is_regular_file(c, ec)) return c.string();
  return std::nullopt;
}

}  // namespace

model_spec resolve_model(std::string_view name_or_path) {
  const std::string key = lower(name_or_path);
  for (const auto& r : model_records()) {
    if (std::find(r.keys.begin(), r.keys.end(), key) == r.keys.end()) continue;
    const json root = detail::parse_json_text(embedded(r.path), r.path);
    field_reader env(root, r.path);
    std::optional<std::string> quant;
    if (env.has("hf_quant_config")) quant = env.object("hf_quant_config").dump();
    return parse_hf_config(env.object("config").dump(), r.entry.name, r.entry.source,
                           quant ? std::optional<std::string_view>(*quant) : std::nullopt);
  }
  std::string path(name_or_path);
  std::error_code ec;  // a path the system refuses (too long, no permission) reads as absent here; read_input_file says why
  if (std::filesystem::is_directory(path, ec)) {
    // A local checkpoint folder: its config.json (and hf_quant_config.json).
    const auto config = std::filesystem::path(path) / "config.json";
    if (!std::filesystem::is_regular_file(config, ec))
      throw input_error(fmt::format("--model: folder '{}' has no config.json", path));
    path = config.string();
  }
  const bool exists = std::filesystem::exists(path, ec);
  if (exists || (ec && ec != std::errc::no_such_file_or_directory)) {
    // read_input_file refuses devices, pipes and oversized files, and says why a path cannot be read.
    const std::string text = read_input_file(path, "--model");
    const auto quant_path = quant_config_beside(path);
    const std::string quant = quant_path ? read_input_file(*quant_path, "--model (hf_quant_config.json)") : "";
    model_spec m = parse_hf_config(text, path, path, quant_path ? std::optional<std::string_view>(quant) : std::nullopt);
    // A checkpoint folder's config.json: its safetensors headers give the bytes on disk.
    const std::filesystem::path p(path);
    if (p.filename() == "config.json") m.on_disk = read_checkpoint_files(p.has_parent_path() ? p.parent_path().string() : ".", m.num_layers());
    return m;
  }
  if (path.ends_with(".json")) throw input_error(fmt::format("--model: no such file '{}'", path));
  std::vector<std::string> names;
  for (const auto& r : model_records()) names.push_back(lower(r.entry.name));
  throw input_error(fmt::format("--model: unknown model '{}' (did you mean '{}'? `gpucal models` lists them; "
                                "a path to a config.json or a checkpoint folder also works)", name_or_path, nearest_name(name_or_path, names)));
}

const std::vector<gpu_price>& list_gpu_prices() {
  static const std::vector<gpu_price> prices = [] {
    const json root = detail::parse_json_text(embedded("prices.json"), "prices.json");
    const field_reader top(root, "prices.json");
    std::vector<gpu_price> out;
    const json& list = top.array("prices");
    for (std::size_t i = 0; i < list.size(); ++i) {
      const field_reader r(list[i], fmt::format("prices.json prices[{}]", i));
      gpu_price p;
      p.gpu_slug = resolve_gpu(r.string("gpu"), "prices.json").slug;
      p.usd_per_gpu_hour = r.number_in("usd_per_gpu_hour", 1e-6, 1e4);
      p.offering = r.string("offering");
      p.source = r.string("source");
      p.date = r.string("date");
      out.push_back(std::move(p));
    }
    return out;
  }();
  return prices;
}

const gpu_price* find_gpu_price(std::string_view gpu_slug) {
  for (const auto& p : list_gpu_prices())
    if (p.gpu_slug == gpu_slug) return &p;
  return nullptr;
}

const std::vector<gpu_spec>& list_gpus() {
  static const std::vector<gpu_spec> gpus = parse_gpu_catalog(embedded("gpus.json"), "gpus.json");
  return gpus;
}

const gpu_spec* find_gpu(std::string_view name) {
  const std::string key = lower(name);
  for (const auto& g : list_gpus()) {
    if (lower(g.name) == key || lower(g.slug) == key) return &g;
    for (const auto& a : g.aliases)
      if (lower(a) == key) return &g;
  }
  return nullptr;
}

const gpu_spec& resolve_gpu(std::string_view name, std::string_view flag) {
  if (const gpu_spec* g = find_gpu(name)) return *g;
  std::vector<std::string> names;
  for (const auto& g : list_gpus()) {
    names.push_back(lower(g.name));
    for (const auto& a : g.aliases) names.push_back(a);
  }
  throw input_error(fmt::format("{}: unknown GPU '{}' (did you mean '{}'? `gpucal gpus` lists them)", flag, name,
                                nearest_name(name, names)));
}

std::vector<engine_profile> list_engines() {
  std::vector<engine_profile> out;
  for (const auto& f : detail::embedded_files())
    if (f.path.starts_with("engines/") && f.path.ends_with(".json")) out.push_back(parse_engine_profile(f.text, f.path));
  return out;
}

namespace {

// "0.19.0" < "0.33.0" < "0.33.1": numeric fields compared in order.
bool version_less(std::string_view a, std::string_view b) {
  std::size_t i = 0, j = 0;
  while (i < a.size() || j < b.size()) {
    long x = 0, y = 0;
    while (i < a.size() && a[i] != '.') x = x * 10 + (std::isdigit(static_cast<unsigned char>(a[i])) ? a[i] - '0' : 0), ++i;
    while (j < b.size() && b[j] != '.') y = y * 10 + (std::isdigit(static_cast<unsigned char>(b[j])) ? b[j] - '0' : 0), ++j;
    if (x != y) return x < y;
    ++i;
    ++j;
  }
  return false;
}

// A profile file (e.g. written by `gpucal fit-engine`) rather than an embedded name.
bool is_profile_path(std::string_view name) { return name.ends_with(".json") || name.find('/') != std::string_view::npos; }

// One embedded engine profile, parsed once, with the text and path it came from.
struct embedded_engine {
  engine_profile profile;
  std::string_view text;
  std::string_view path;
};

std::vector<embedded_engine> embedded_engines() {
  std::vector<embedded_engine> out;
  for (const auto& f : detail::embedded_files())
    if (f.path.starts_with("engines/") && f.path.ends_with(".json"))
      out.push_back({parse_engine_profile(f.text, f.path), f.text, f.path});
  return out;
}

// The embedded profile that "ENGINE" (the newest) or "ENGINE@VERSION" names.
const embedded_engine& pick_engine(const std::vector<embedded_engine>& all, std::string_view name) {
  const std::string spec = lower(name);
  const auto at = spec.find('@');
  const std::string key = spec.substr(0, at);
  const std::string version = at == std::string::npos ? "" : spec.substr(at + 1);
  std::vector<const engine_profile*> same;
  std::vector<std::string> names;
  for (const auto& e : all) {
    if (lower(e.profile.engine) == key) same.push_back(&e.profile);
    if (std::find(names.begin(), names.end(), e.profile.engine) == names.end()) names.push_back(e.profile.engine);
  }
  if (same.empty()) {
    std::string allowed;
    for (const auto& n : names) allowed += (allowed.empty() ? "" : ", ") + n;
    throw input_error(fmt::format("--engine: unknown engine '{}' (allowed: {}, each optionally @VERSION, or a profile .json file)",
                                  name, allowed));
  }
  std::sort(same.begin(), same.end(), [](const auto* x, const auto* y) { return version_less(x->version, y->version); });
  // The first file with that engine and version (a duplicate pair resolves to the earlier file).
  const auto file_of = [&all](const engine_profile& e) -> const embedded_engine& {
    for (const auto& f : all)
      if (f.profile.engine == e.engine && f.profile.version == e.version) return f;
    throw std::logic_error("engine profile without its file: " + e.engine);
  };
  if (version.empty()) return file_of(*same.back());  // the newest
  for (const auto* e : same)
    if (e->version == version || e->version.starts_with(version + ".")) return file_of(*e);
  std::string known;
  for (const auto* e : same) known += (known.empty() ? "" : ", ") + e->engine + "@" + e->version;
  throw input_error(fmt::format("--engine: no profile of {} version {} (known: {})", key, version, known));
}

}  // namespace

engine_profile resolve_engine(std::string_view name) {
  if (is_profile_path(name)) {
    const std::string path(name);
    return parse_engine_profile(read_input_file(path, "--engine"), path);
  }
  return pick_engine(embedded_engines(), name).profile;
}

std::pair<std::string, std::string> engine_profile_text(std::string_view name) {
  if (is_profile_path(name)) {
    const std::string path(name);
    return {read_input_file(path, "--engine"), path};
  }
  const embedded_engine& e = pick_engine(embedded_engines(), name);
  return {std::string(e.text), std::string(e.path)};
}

coefficients default_coefficients() {
  return parse_coefficients(embedded("coefficients/default.json"), "coefficients/default.json");
}

}  // namespace gpucal::model
