// What every fuzz target asserts of gpucal's answer to one input: it either
// refuses it (gpucal::input_error, or exit 2 with one line on stderr and
// nothing on stdout) or answers with sizes that are finite and never
// negative. Anything else aborts, and libFuzzer keeps the input.
#pragma once

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "gpucal/model/memory_model.hpp"

namespace gpucal::fuzz {

[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "gpucal fuzz: contract broken: %s\n", what.c_str());
  std::abort();
}

inline void check(bool ok, const std::string& what) {
  if (!ok) fail(what);
}

/// Every number of a JSON answer is finite and >= 0.
inline void check_json_figures(const nlohmann::json& v, const std::string& at = "") {
  if (v.is_object()) {
    for (const auto& [k, x] : v.items()) check_json_figures(x, at + "." + k);
  } else if (v.is_array()) {
    for (std::size_t i = 0; i < v.size(); ++i) check_json_figures(v[i], at + "[" + std::to_string(i) + "]");
  } else if (v.is_number_float()) {
    check(std::isfinite(v.get<double>()) && v.get<double>() >= 0, at + " = " + v.dump());
  } else if (v.is_number_integer()) {
    check(v.get<std::int64_t>() >= 0, at + " = " + v.dump());
  }
}

/// The sizes of a memory estimate are never negative.
inline void check_estimate(const model::memory_estimate& e) {
  for (const std::int64_t v : {e.params, e.checkpoint_params, e.active_params, e.weights_bytes, e.kv_pool_bytes, e.block_bytes,
                               e.num_blocks, e.max_tokens, e.request_bytes, e.budget_bytes, e.charged_bytes, e.outside_bytes,
                               e.activation.peak_bytes, e.spare_bytes, e.shortfall_bytes, e.kv.bytes_per_token,
                               e.kv.state_bytes_per_request, e.kv.blocks_per_request})
    check(v >= 0, "a memory figure is negative");
  check(std::isfinite(e.max_concurrency) && e.max_concurrency >= 0, "max_concurrency is not a finite number >= 0");
  check(e.fits == e.failures.empty(), "fits disagrees with failures");
  check(e.failures.size() == e.advice.size(), "a failure without advice");
}

}  // namespace gpucal::fuzz
