// Renders a memory estimate: a human breakdown table, or the JSON contract
// of `gpucal estimate --json`.
#pragma once

#include <string>

#include "gpucal/model/memory_model.hpp"

namespace gpucal::cli {

std::string estimate_text(const model::memory_estimate& e);
std::string estimate_json(const model::memory_estimate& e);

/// 8030261248 -> "8,030,261,248".
std::string group_digits(long long v);

}  // namespace gpucal::cli
