// The embedded catalogs: models (real config.json files), GPUs, engine
// profiles and default coefficients, looked up by case-insensitive name or
// alias. Unknown names fail with the nearest known name suggested.
#pragma once

#include <string>
#include <utility>
#include <string_view>
#include <vector>

#include "gpucal/model/coefficients.hpp"
#include "gpucal/model/engine_profile.hpp"
#include "gpucal/model/gpu_spec.hpp"
#include "gpucal/model/model_spec.hpp"

namespace gpucal::model {

struct model_entry {
  std::string name;
  std::vector<std::string> aliases;
  std::string hf_repo;
  std::string source;
};

std::vector<model_entry> list_models();
/// A catalog name (case-insensitive) or a path to a config.json.
model_spec resolve_model(std::string_view name_or_path);

const std::vector<gpu_spec>& list_gpus();
/// The GPU by name, slug or alias (any case); nullptr when none matches.
const gpu_spec* find_gpu(std::string_view name);
/// find_gpu, or an input_error naming `flag` with the nearest name.
const gpu_spec& resolve_gpu(std::string_view name, std::string_view flag = "--gpu");

/// A GPU's default on-demand price and where it is from (model/catalog/prices.json).
struct gpu_price {
  std::string gpu_slug;
  double usd_per_gpu_hour = 0;
  std::string offering;  ///< provider and offering, e.g. "RunPod Secure Cloud, on-demand"
  std::string source;    ///< the price list, and the copy of it read
  std::string date;      ///< the list's date, YYYY-MM-DD
};
/// The catalog's default prices; GPUs without a public list price are absent.
const std::vector<gpu_price>& list_gpu_prices();
/// The default price of a GPU slug, or nullptr.
const gpu_price* find_gpu_price(std::string_view gpu_slug);

std::vector<engine_profile> list_engines();
/// "vllm" (the newest version profiled), "vllm@0.19" or "vllm@0.19.0" (that
/// version), or a path to a profile file (gpucal.engine/1). Errors name the
/// engines and versions known.
engine_profile resolve_engine(std::string_view name);
/// The JSON text of the profile resolve_engine(name) reads, and where it is from.
std::pair<std::string, std::string> engine_profile_text(std::string_view name);

coefficients default_coefficients();

/// Levenshtein distance between two strings.
std::size_t edit_distance(std::string_view a, std::string_view b);

/// The candidate closest to `query` by edit distance (case-insensitive).
std::string nearest_name(std::string_view query, const std::vector<std::string>& candidates);

}  // namespace gpucal::model
