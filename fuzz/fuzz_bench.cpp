// Fuzzes `gpucal fit`'s reader of gpucal_bench JSON: a benchmark file either
// is refused or becomes a calibration that passes the validation `show`
// applies (checked_calibration_json, as fit runs before it writes); and
// merge-bench's salvage of files cut off mid-write.
#include <string>

#include "fuzz_check.hpp"
#include "gpucal/model/bench_json.hpp"
#include "gpucal/model/calibration.hpp"
#include "gpucal/model/catalog.hpp"
#include "gpucal/model/errors.hpp"
#include "gpucal/model/fit.hpp"
#include "json_mutator.hpp"

GPUCAL_JSON_MUTATOR

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace gm = gpucal::model;
  try {
    const gm::calibration_file c =
        gm::calibration_from_benchmarks(std::string_view(reinterpret_cast<const char*>(data), size), "bench.json",
                                        gm::resolve_gpu("h100"), "2026-11-30T00:00:00Z", "0.0.0", "fuzz");
    (void)gm::checked_calibration_json(c, "fit.json");
  } catch (const gpucal::input_error&) {
  }
  // The merge that salvages files cut off by the device run's deadline: what it writes reads back.
  try {
    const std::string text(reinterpret_cast<const char*>(data), size);
    const gm::bench_merge m = gm::merge_bench_json({{"a.json", text}, {"b.json", text.substr(0, text.size() / 2)}});
    const auto back = nlohmann::json::parse(m.json);
    gpucal::fuzz::check(back.at("benchmarks").size() == m.runs, "merged run count");
  } catch (const gpucal::input_error&) {
  }
  return 0;
}
