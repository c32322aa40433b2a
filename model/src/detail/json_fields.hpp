// Typed, error-naming reads from nlohmann::json objects, shared by every
// parser of the model library (configs, catalogs, profiles, coefficients).
#pragma once

#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gpucal/model/errors.hpp"
#include "gpucal/model/limits.hpp"

namespace gpucal::model::detail {

using json = nlohmann::json;

/// Python's json module writes non-finite floats as bare Infinity,
/// -Infinity and NaN, and Hugging Face config.json files carry them (e.g.
/// Nemotron-H's time_step_limit). Outside strings they become null, so a
/// field gpucal reads is then reported missing, and others are ignored.
inline std::string python_literals_as_null(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < text.size()) {
        out += text[++i];
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
      out += c;
      continue;
    }
    bool replaced = false;
    for (const std::string_view token : {"-Infinity", "Infinity", "NaN"}) {
      if (text.substr(i, token.size()) == token) {
        out += "null";
        i += token.size() - 1;
        replaced = true;
        break;
      }
    }
    if (!replaced) out += c;
  }
  return out;
}

/// Deepest nesting of objects and arrays any input may have: configs nest
/// four levels, calibration files five.
inline constexpr int max_json_depth = limits::json_depth;

/// A JSON value as an error message shows it: compact, and cut after 60
/// characters so a huge array cannot flood the one line an error gets.
inline std::string shown(const json& v) {
  std::string text = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

/// nlohmann's message without its "[json.exception.parse_error.101] " tag.
inline std::string json_library_message(const json::exception& e) {
  std::string_view text = e.what();
  if (text.starts_with("[json.exception.")) {
    const auto end = text.find("] ");
    if (end != std::string_view::npos) text.remove_prefix(end + 2);
  }
  return std::string(text);
}

/// Parses `text`, or throws input_error naming `where`: malformed JSON, a
/// number beyond double range (1e999), or nesting deeper than max_json_depth.
inline json parse_json_text(std::string_view text, std::string_view where) {
  // Depth first, outside strings, so no deep input reaches the parser.
  int depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_json_depth)
        throw input_error(fmt::format("{}: not valid input: nested deeper than {} levels", where, max_json_depth));
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw input_error(fmt::format("{}: not valid JSON ({})", where, json_library_message(e)));
  }
}

// Reads typed fields from one JSON object, naming `where.key` in every error.
class field_reader {
public:
  field_reader(const json& object, std::string where) : object_(object), where_(std::move(where)) {}

  const std::string& where() const { return where_; }
  /// The object this reader reads.
  const json& object_json() const { return object_; }
  bool has(const char* key) const { return object_.contains(key) && !object_.at(key).is_null(); }
  const json& raw(const char* key) const { return object_.at(key); }

  std::int64_t positive_int(const char* key) const {
    if (!has(key)) fail(key, "is missing");
    return positive_int_value(key, object_.at(key));
  }
  std::int64_t positive_int_or(const char* key, std::int64_t fallback) const {
    return has(key) ? positive_int_value(key, object_.at(key)) : fallback;
  }
  /// A positive integer no larger than `limit` (a size read from a config).
  std::int64_t dim(const char* key, std::int64_t limit) const {
    if (!has(key)) fail(key, "is missing");
    return dim_value(key, object_.at(key), limit);
  }
  std::int64_t dim_or(const char* key, std::int64_t fallback, std::int64_t limit) const {
    return has(key) ? dim_value(key, object_.at(key), limit) : fallback;
  }
  /// A power of two in [lo, hi] (group sizes).
  std::int64_t power_of_two_or(const char* key, std::int64_t fallback, std::int64_t lo, std::int64_t hi) const {
    if (!has(key)) return fallback;
    const json& v = object_.at(key);
    const std::int64_t n = v.is_number_integer() ? v.get<std::int64_t>() : 0;
    if (n < lo || n > hi || (n & (n - 1)) != 0) fail(key, fmt::format("must be a power of two from {} to {}, got {}", lo, hi, shown(v)));
    return n;
  }
  /// An integer in [0, limit].
  std::int64_t count_or(const char* key, std::int64_t fallback, std::int64_t limit) const {
    if (!has(key)) return fallback;
    const json& v = object_.at(key);
    if (!v.is_number_integer() || v.get<std::int64_t>() < 0 || v.get<std::int64_t>() > limit)
      fail(key, fmt::format("must be an integer in [0, {}], got {}", limit, shown(v)));
    return v.get<std::int64_t>();
  }
  std::int64_t non_negative_int_or(const char* key, std::int64_t fallback) const {
    if (!has(key)) return fallback;
    const json& v = object_.at(key);
    if (!v.is_number_integer() || v.get<std::int64_t>() < 0) fail(key, fmt::format("must be an integer >= 0, got {}", shown(v)));
    return v.get<std::int64_t>();
  }
  bool boolean_or(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    const json& v = object_.at(key);
    if (!v.is_boolean()) fail(key, fmt::format("must be true or false, got {}", shown(v)));
    return v.get<bool>();
  }
  std::string string_or(const char* key, std::string fallback) const {
    if (!has(key)) return fallback;
    const json& v = object_.at(key);
    if (!v.is_string()) fail(key, fmt::format("must be a string, got {}", shown(v)));
    return v.get<std::string>();
  }
  double number(const char* key) const {
    if (!has(key)) fail(key, "is missing");
    const json& v = object_.at(key);
    if (!v.is_number()) fail(key, fmt::format("must be a number, got {}", shown(v)));
    return v.get<double>();
  }
  std::string string(const char* key) const {
    if (!has(key)) fail(key, "is missing");
    return string_or(key, "");
  }
  /// A finite number in [lo, hi].
  double number_in(const char* key, double lo, double hi) const {
    const double v = number(key);
    if (!std::isfinite(v) || v < lo || v > hi) fail(key, fmt::format("must be a finite number in [{}, {}], got {}", lo, hi, v));
    return v;
  }
  const json& array(const char* key) const {
    if (!has(key)) fail(key, "is missing (expected a list)");
    if (!object_.at(key).is_array()) fail(key, fmt::format("must be a list, got {}", shown(object_.at(key))));
    return object_.at(key);
  }
  const json& object(const char* key) const {
    if (!has(key)) fail(key, "is missing (expected an object)");
    if (!object_.at(key).is_object()) fail(key, fmt::format("must be an object, got {}", shown(object_.at(key))));
    return object_.at(key);
  }
  /// A list of strings.
  std::vector<std::string> string_list(const char* key) const {
    std::vector<std::string> out;
    const json& l = array(key);
    for (std::size_t i = 0; i < l.size(); ++i) {
      if (!l[i].is_string()) fail(key, fmt::format("entry {} is {} (expected a string)", i, shown(l[i])));
      out.push_back(l[i].get<std::string>());
    }
    return out;
  }
  /// A reader for the nested object `key`.
  field_reader child(const char* key) const { return field_reader(object(key), where_ + "." + key); }

  [[noreturn]] void fail(const char* key, const std::string& what) const {
    throw input_error(fmt::format("{}: field '{}' {}", where_, key, what));
  }

private:
  std::int64_t dim_value(const char* key, const json& v, std::int64_t limit) const {
    if (!v.is_number_integer() || v.get<std::int64_t>() <= 0 || v.get<std::int64_t>() > limit)
      fail(key, fmt::format("must be a positive integer no larger than {}, got {}", limit, shown(v)));
    return v.get<std::int64_t>();
  }
  std::int64_t positive_int_value(const char* key, const json& v) const {
    if (!v.is_number_integer() || v.get<std::int64_t>() <= 0) fail(key, fmt::format("must be a positive integer, got {}", shown(v)));
    return v.get<std::int64_t>();
  }

  const json& object_;
  std::string where_;
};

}  // namespace gpucal::model::detail
