// JSON pieces shared by the commands' --json outputs (private to the CLI).
#pragma once

#include <nlohmann/json.hpp>

#include "gpucal/model/memory_model.hpp"

namespace gpucal::cli {

/// The keys that identify a deployment: schema, model, GPU, tp, engine,
/// weight, activation and KV formats.
nlohmann::ordered_json deployment_json(const model::memory_estimate& e, const char* schema);

}  // namespace gpucal::cli
