// Fuzzes the calibration reader (what `show`, `compare`, --calibration and
// the newest-file lookup share) and the coefficients reader: what parses
// must serialize and parse again, and the model must run on it.
#include <string>

#include "fuzz_check.hpp"
#include "gpucal/model/calibration.hpp"
#include "gpucal/model/catalog.hpp"
#include "gpucal/model/errors.hpp"
#include "gpucal/model/regression.hpp"
#include "json_mutator.hpp"

GPUCAL_JSON_MUTATOR

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace gm = gpucal::model;
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const gm::calibration_file c = gm::parse_calibration(text, "fuzz.json");
    // A file the reader accepts is one the writer can write again.
    const gm::calibration_file back = gm::parse_calibration(gm::checked_calibration_json(c, "fuzz.json"), "again.json");
    gpucal::fuzz::check(back.measurements.size() == c.measurements.size(), "round trip lost measurements");
    (void)gm::compare_calibrations(c, back, 5, 0.01);
  } catch (const gpucal::input_error&) {
  }
  try {
    const gm::coefficients coeffs = gm::parse_coefficients(text, "fuzz.json");
    const gm::memory_estimate e = gm::estimate_memory(gm::resolve_model("llama-3-8b"), gm::resolve_gpu("h100"),
                                                      gm::resolve_engine("vllm"), coeffs, {});
    gpucal::fuzz::check_estimate(e);
  } catch (const gpucal::input_error&) {
  }
  return 0;
}
