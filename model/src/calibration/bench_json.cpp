// Merging and salvaging gpucal_bench JSON (see bench_json.hpp).
#include "gpucal/model/bench_json.hpp"

#include <fmt/format.h>

#include <cctype>
#include <optional>

#include "detail/json_fields.hpp"
#include "gpucal/model/errors.hpp"

namespace gpucal::model {

namespace {

using detail::json;

// A cursor over one document that steps over whole JSON values without
// parsing them, so a document cut off inside its last value is read up to it.
class scanner {
public:
  explicit scanner(std::string_view text) : t_(text) {}

  bool at_end() {
    skip_space();
    return i_ >= t_.size();
  }
  bool eat(char c) {
    skip_space();
    if (i_ < t_.size() && t_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  /// The next complete value's text, or nullopt when the document ends inside it.
  std::optional<std::string_view> value() {
    skip_space();
    const std::size_t start = i_;
    if (i_ >= t_.size()) return std::nullopt;
    if (t_[i_] == '"') {
      if (!skip_string()) return std::nullopt;
    } else if (t_[i_] == '{' || t_[i_] == '[') {
      int depth = 0;
      while (i_ < t_.size()) {
        const char c = t_[i_];
        if (c == '"') {
          if (!skip_string()) return std::nullopt;
          continue;
        }
        ++i_;
        if (c == '{' || c == '[') ++depth;
        if ((c == '}' || c == ']') && --depth == 0) return t_.substr(start, i_ - start);
        if (depth > detail::max_json_depth) return std::nullopt;
      }
      return std::nullopt;
    } else {
      while (i_ < t_.size() && t_[i_] != ',' && t_[i_] != '}' && t_[i_] != ']' && !std::isspace(static_cast<unsigned char>(t_[i_])))
        ++i_;
      if (i_ >= t_.size()) return std::nullopt;  // a number may have been cut
    }
    return t_.substr(start, i_ - start);
  }

private:
  void skip_space() {
    while (i_ < t_.size() && std::isspace(static_cast<unsigned char>(t_[i_]))) ++i_;
  }
  bool skip_string() {
    for (++i_; i_ < t_.size(); ++i_) {
      if (t_[i_] == '\\') {
        ++i_;
      } else if (t_[i_] == '"') {
        ++i_;
        return true;
      }
    }
    return false;
  }

  std::string_view t_;
  std::size_t i_ = 0;
};

}  // namespace

bench_merge merge_bench_json(const std::vector<std::pair<std::string, std::string>>& documents) {
  bench_merge out;
  std::optional<json> context;
  json runs = json::array();
  for (const auto& [name, text] : documents) {
    scanner s(text);
    std::size_t kept = 0;
    bool cut = false, seen_context = false;
    if (!s.eat('{')) {
      out.notes.push_back(fmt::format("{}: not a JSON object; skipped", name));
      continue;
    }
    while (!cut && !s.eat('}')) {
      const auto key = s.value();  // after '{' or ',' a key must follow
      if (!key || !s.eat(':')) {
        cut = true;
        break;
      }
      const json k = json::parse(*key, nullptr, false);
      if (!k.is_string()) {
        cut = true;
        break;
      }
      if (k.get<std::string>() == "benchmarks") {
        if (!s.eat('[')) {
          cut = true;
          break;
        }
        while (!s.eat(']')) {
          const auto run = s.value();
          if (!run) {
            cut = true;
            break;
          }
          try {
            json r = detail::parse_json_text(*run, name);
            if (r.is_object()) {
              runs.push_back(std::move(r));
              ++kept;
            }
          } catch (const input_error&) {
            cut = true;
            break;
          }
          s.eat(',');
        }
      } else {
        const auto v = s.value();
        if (!v) {
          cut = true;
          break;
        }
        if (k.get<std::string>() == "context") {
          try {
            json c = detail::parse_json_text(*v, name);
            if (c.is_object()) {
              seen_context = true;
              if (!context) context = std::move(c);
            }
          } catch (const input_error&) {
          }
        }
      }
      if (!s.eat(',')) {
        cut = !s.eat('}');
        break;
      }
    }
    out.runs += kept;
    out.notes.push_back(fmt::format("{}: {} run(s){}{}", name, kept, seen_context ? "" : ", no context",
                                    cut ? ", cut off mid-write: the runs before the cut are kept" : ""));
  }
  if (!context)
    throw input_error("merge: no input has a Google Benchmark context (the GPU's identity); nothing to merge");
  json merged;
  merged["context"] = *context;
  merged["benchmarks"] = std::move(runs);
  out.json = merged.dump(2) + "\n";
  return out;
}

}  // namespace gpucal::model
