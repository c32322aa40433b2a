// Fuzzes the engine-profile reader (model/catalog/engines/*.json): what
// parses must give an estimate whose sizes are never negative.
#include <string>

#include "fuzz_check.hpp"
#include "gpucal/model/catalog.hpp"
#include "gpucal/model/engine_profile.hpp"
#include "gpucal/model/errors.hpp"
#include "json_mutator.hpp"

GPUCAL_JSON_MUTATOR

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace gm = gpucal::model;
  static const gm::model_spec dense = gm::resolve_model("llama-3-8b");
  static const gm::model_spec hybrid = gm::resolve_model("qwen3.5-122b-a10b");
  try {
    const gm::engine_profile p = gm::parse_engine_profile(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.json");
    for (const gm::model_spec* m : {&dense, &hybrid}) {
      try {
        gpucal::fuzz::check_estimate(
            gm::estimate_memory(*m, gm::resolve_gpu("h100"), p, gm::default_coefficients(), {}));
      } catch (const gpucal::input_error&) {
      }
    }
  } catch (const gpucal::input_error&) {
  }
  return 0;
}
