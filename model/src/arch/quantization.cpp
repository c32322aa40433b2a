// Storage cost of quantized linear layers, module matching for ignore lists
// and mixed formats, and the --quantization flag.
#include "gpucal/model/quantization.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <stdexcept>

#include "gpucal/model/errors.hpp"
#include "gpucal/model/limits.hpp"
#include "arch/module_regex.hpp"
#include "gpucal/model/units.hpp"

namespace gpucal::model {

namespace {

// fnmatch without character classes: '*' matches any run, '?' one character.
bool glob_match(std::string_view p, std::string_view s) {
  std::size_t pi = 0, si = 0, star = std::string_view::npos, mark = 0;
  while (si < s.size()) {
    if (pi < p.size() && (p[pi] == '?' || p[pi] == s[si])) {
      ++pi;
      ++si;
    } else if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = si;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      si = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

// "model.language_model.layers.3.mlp" -> "layers.3.mlp"; other names stay.
std::string_view from_layers(std::string_view name) {
  // Containers that hold the decoder's layers in one checkpoint or another;
  // anything else before "layers." (mtp., vision_tower.) is part of the name.
  for (const std::string_view container : {"model.language_model.", "language_model.model.", "model.model.", "model.",
                                           "language_model.", "backbone."}) {
    if (name.starts_with(container) && name.substr(container.size()).starts_with("layers.")) return name.substr(container.size());
  }
  return name;
}

}  // namespace

namespace {

bool is_glob(std::string_view p) { return p.find_first_of("*?") != std::string_view::npos; }

// "model.layers.3.mlp.experts.*.up_proj" -> "model.layers.3.mlp.experts.0.up_proj"
std::string one_expert(std::string_view module) {
  std::string m(module);
  for (auto at = m.find(".*."); at != std::string::npos; at = m.find(".*.", at)) m[at + 1] = '0';
  return m;
}

}  // namespace

namespace {

// A glob, a regex ("re:...") or a module name, compiled once.
struct compiled_pattern {
  std::string text;
  std::optional<module_regex> re;

  explicit compiled_pattern(std::string p) : text(std::move(p)) {
    if (text.starts_with("re:")) re.emplace(std::string_view(text).substr(3));
  }
  bool matches(std::string_view module) const {
    if (re) return re->match(one_expert(module));
    const std::string named = is_glob(text) ? std::string(module) : one_expert(module);
    const std::string_view p = from_layers(text), m = from_layers(named);
    if (glob_match(p, m)) return true;
    // A pattern that names a module covers the modules (and weights) below it.
    return glob_match(std::string(p) + ".*", m);
  }
};

}  // namespace

bool module_matches(std::string_view pattern, std::string_view module) {
  try {
    return compiled_pattern(std::string(pattern)).matches(module);
  } catch (const std::invalid_argument&) {
    return false;  // not a supported regex: refused when the config is read
  }
}

std::string quant_format::describe_format(std::string_view lead) const {
  if (!quantized()) return "none";
  std::vector<std::string> details;
  if (!lead.empty()) details.emplace_back(lead);
  if (!name.empty() && name != lead) details.push_back(name);
  switch (granularity) {
    case scale_granularity::tensor: details.emplace_back("per-tensor scales"); break;
    case scale_granularity::channel: details.emplace_back("per-channel scales"); break;
    case scale_granularity::group: details.push_back(fmt::format("group {}", group_size)); break;
    case scale_granularity::block: details.push_back(fmt::format("{}x{} block scales", group_size, group_size)); break;
    case scale_granularity::none: break;
  }
  if (granularity != scale_granularity::none)
    details.emplace_back(scale_bytes == 4 ? "fp32 scales" : scale_bytes == 1 ? "8-bit scales" : "16-bit scales");
  if (zero_points) details.emplace_back("zero points");
  if (act_order) details.emplace_back("act-order");
  if (tensor_scale_bytes > 0) details.emplace_back("per-tensor fp32 scalars");
  std::string s(dtype_name(*weight));
  for (std::size_t i = 0; i < details.size(); ++i) s += (i == 0 ? " (" : ", ") + details[i];
  return details.empty() ? s : s + ")";
}

// Exact module names go into hash maps (mixed-precision checkpoints list
// tens of thousands); globs and regexes are tried in order after them.
struct quant_spec::index {
  std::unordered_map<std::string, const quant_format*> exact_rules;
  std::vector<std::pair<compiled_pattern, const quant_format*>> pattern_rules;
  std::unordered_map<std::string, bool> exact_ignores;
  std::vector<compiled_pattern> pattern_ignores;
};

const quant_format& quant_spec::format_for(const std::string& module) const {
  static const quant_format unquantized{};
  if (!memo_.ptr) memo_.ptr = std::make_shared<lookup_memo>();
  const auto it = memo_.ptr->formats.find(module);
  if (it != memo_.ptr->formats.end()) return *it->second;
  if (!index_.ptr) {
    auto x = std::make_shared<index>();
    try {
    const auto plain = [](const std::string& p) { return !p.starts_with("re:") && !is_glob(p); };
    for (const auto& [pattern, rule] : rules) {
      if (plain(pattern)) {
        x->exact_rules.emplace(std::string(from_layers(pattern)), &rule);
      } else {
        x->pattern_rules.emplace_back(compiled_pattern(pattern), &rule);
      }
    }
    for (const auto& pattern : ignore) {
      if (plain(pattern)) {
        x->exact_ignores.emplace(std::string(from_layers(pattern)), true);
      } else {
        x->pattern_ignores.emplace_back(pattern);
      }
    }
    } catch (const std::invalid_argument& e) {
      throw input_error(fmt::format("quantization: a module pattern is not a supported regular expression ({})", e.what()));
    }
    index_.ptr = x;
  }
  // Every glob or regex tried counts against limits::pattern_tests, so no
  // config can make this lookup run for minutes.
  // A regex test counts as four: it costs about four glob tests.
  const auto tested = [this](const compiled_pattern& p) {
    memo_.ptr->pattern_tests += p.re ? 4 : 1;
    if (memo_.ptr->pattern_tests > limits::pattern_tests)
      throw input_error(fmt::format("quantization_config: its {} glob and regex module patterns, tried on every module of every "
                                    "layer, need more than {} tests (gpucal's limit; a checkpoint's patterns need far fewer)",
                                    index_.ptr->pattern_rules.size() + index_.ptr->pattern_ignores.size(), limits::pattern_tests));
    return true;
  };
  // The module and each module above it, for exact names.
  const std::string named = one_expert(module);
  std::vector<std::string> names;
  for (std::string n(from_layers(named));;) {
    names.push_back(n);
    const auto dot = n.rfind('.');
    if (dot == std::string::npos) break;
    n.resize(dot);
  }
  const quant_format* f = nullptr;
  for (const auto& n : names) {
    const auto r = index_.ptr->exact_rules.find(n);
    if (r != index_.ptr->exact_rules.end()) {
      f = r->second;
      break;
    }
  }
  if (!f)
    for (const auto& [pattern, rule] : index_.ptr->pattern_rules)
      if (tested(pattern) && pattern.matches(module)) {
        f = rule;
        break;
      }
  if (!f) {
    f = this;
    bool ignored = std::any_of(names.begin(), names.end(), [&](const std::string& n) { return index_.ptr->exact_ignores.contains(n); });
    for (std::size_t i = 0; !ignored && i < index_.ptr->pattern_ignores.size(); ++i)
      ignored = tested(index_.ptr->pattern_ignores[i]) && index_.ptr->pattern_ignores[i].matches(module);
    if (ignored) f = &unquantized;
  }
  memo_.ptr->formats.emplace(module, f);
  return *f;
}

std::string quant_spec::describe() const {
  if (!quantized() && rules.empty()) return "none";
  std::string s = quantized() ? describe_format(method) : fmt::format("model dtype ({})", method);
  if (!rules.empty()) s += fmt::format("; {} module pattern(s) in other formats", rules.size());
  if (!ignore.empty()) s += fmt::format("; {} module pattern(s) left unquantized", ignore.size());
  return s;
}

double linear_weight_bytes(const quant_format& q, dtype model_dtype, std::int64_t rows, std::int64_t cols) {
  const double elements = static_cast<double>(rows) * static_cast<double>(cols);
  if (!q.quantized()) return elements * dtype_bytes(model_dtype);
  const int bits = dtype_bits(*q.weight);
  // Packed weights: 4-bit values two to a byte, rounded up per row.
  double bytes = static_cast<double>(rows) * static_cast<double>(ceil_div(cols * bits, 8));
  std::int64_t scales = 0;
  switch (q.granularity) {
    case scale_granularity::none: break;
    case scale_granularity::tensor: scales = 1; break;
    case scale_granularity::channel: scales = rows; break;
    case scale_granularity::group: scales = rows * ceil_div(cols, q.group_size); break;
    case scale_granularity::block: scales = ceil_div(rows, q.group_size) * ceil_div(cols, q.group_size); break;
  }
  bytes += static_cast<double>(scales) * q.scale_bytes;
  // Zero points are packed at the weight's bit width, one per scale.
  if (q.zero_points) bytes += std::ceil(static_cast<double>(scales) * bits / 8.0);
  // GPTQ act-order keeps g_idx and its sort permutation: two int32 per input.
  if (q.act_order) bytes += static_cast<double>(cols) * 8.0;
  return bytes + q.tensor_scale_bytes;
}

namespace {

quant_spec int4_groupwise(std::string method, std::int64_t group, bool zeros) {
  quant_spec q;
  q.method = std::move(method);
  q.weight = dtype::int4;
  q.granularity = scale_granularity::group;
  q.group_size = group;
  q.scale_bytes = 2;
  q.zero_points = zeros;
  return q;
}

// What a checkpoint leaves unquantized carries over to a flag that changes its format.
void keep_ignores(quant_spec& q, const std::optional<quant_spec>& from_config) {
  if (from_config) q.ignore = from_config->ignore;
}

}  // namespace

std::int64_t checked_group_size(std::int64_t group, std::string_view what) {
  if (group < 16 || group > 1024 || (group & (group - 1)) != 0)
    throw input_error(fmt::format("{}: {} is not supported (allowed: a power of two from 16 to 1024)", what, group));
  return group;
}

quant_format nvfp4_format() {
  quant_format f;
  f.name = "nvfp4";
  f.weight = dtype::fp4_e2m1;
  f.granularity = scale_granularity::group;
  f.group_size = 16;
  f.scale_bytes = 1;
  f.tensor_scale_bytes = 8;
  return f;
}

quant_format mxfp4_format(std::int64_t group) {
  quant_format f;
  f.name = "mxfp4";
  f.weight = dtype::fp4_e2m1;
  f.granularity = scale_granularity::group;
  f.group_size = group;
  f.scale_bytes = 1;
  return f;
}

quant_spec quant_from_flag(std::string_view flag, const std::optional<quant_spec>& from_config,
                           std::optional<std::int64_t> group_size) {
  quant_spec q;
  q.origin = "--quantization";
  if (flag == "none") return q;
  if (group_size && flag != "awq" && flag != "gptq" && flag != "w4a16" && flag != "int4")
    throw input_error(fmt::format("--group-size: applies to --quantization awq, gptq, w4a16 or int4, not '{}'", flag));
  if (flag == "fp8") {
    // A checkpoint already in fp8 keeps its own scales (e.g. DeepSeek's 128x128 blocks).
    if (from_config && from_config->weight == dtype::fp8_e4m3) {
      quant_spec c = *from_config;
      c.origin = "--quantization (checkpoint format)";
      return c;
    }
    // vLLM's --quantization fp8 on a 16-bit checkpoint: dynamic per-tensor fp8
    // weights with one fp32 scale each.
    q.method = "fp8";
    q.weight = dtype::fp8_e4m3;
    q.granularity = scale_granularity::tensor;
    q.scale_bytes = 4;
    keep_ignores(q, from_config);
    return q;
  }
  if (flag == "int8" || flag == "w8a8") {
    q.method = "int8";
    q.weight = dtype::int8;
    q.granularity = scale_granularity::channel;
    q.scale_bytes = 4;
    keep_ignores(q, from_config);
    return q;
  }
  if (flag == "nvfp4" || flag == "mxfp4") {
    if (from_config && from_config->weight == dtype::fp4_e2m1 && from_config->name == flag) {
      quant_spec c = *from_config;
      c.origin = "--quantization (checkpoint format)";
      return c;
    }
    static_cast<quant_format&>(q) = flag == "nvfp4" ? nvfp4_format() : mxfp4_format();
    q.method = flag == "nvfp4" ? "modelopt" : "mxfp4";
    keep_ignores(q, from_config);
    return q;
  }
  if (flag == "awq" || flag == "gptq" || flag == "w4a16" || flag == "int4") {
    std::int64_t group = 128;
    if (group_size) {
      group = *group_size;
    } else if (from_config && from_config->granularity == scale_granularity::group && from_config->weight == dtype::int4) {
      group = from_config->group_size;
    }
    checked_group_size(group, group_size ? "--group-size" : "the checkpoint's group_size");
    // AWQ stores asymmetric zero points; GPTQ and plain W4A16 default to symmetric.
    quant_spec g = int4_groupwise(flag == "int4" ? "w4a16" : std::string(flag), group, flag == "awq");
    g.origin = "--quantization";
    keep_ignores(g, from_config);
    return g;
  }
  throw input_error(fmt::format("--quantization: '{}' is not supported (allowed: {})", flag, quantization_flag_values));
}

}  // namespace gpucal::model
