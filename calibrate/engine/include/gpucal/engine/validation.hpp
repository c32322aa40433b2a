// The validation table of `gpucal validate`: for each model and quantity,
// what the model predicted from the calibration file, what the reference
// engine measured, the error in % and whether it meets its target
// (memory within 3 %, step times within 10 %). Rendered as Markdown for
// results/<sku>/validation.md and as plain text.
#pragma once

#include <string>
#include <vector>

namespace gpucal::engine {

inline constexpr double memory_target_pct = 3.0;
inline constexpr double time_target_pct = 10.0;

struct validation_row {
  std::string model;     ///< e.g. "Llama-3-8B"
  std::string quantity;  ///< e.g. "KV blocks", "decode step B=16 L=2048"
  std::string unit;      ///< "GiB", "blocks", "ms"
  double predicted = 0;
  double measured = 0;
  double target_pct = 0;  ///< |error| allowed; 0: reported only

  /// (predicted - measured) / measured x 100.
  double error_pct() const;
  bool meets_target() const;
};

struct validation_report {
  std::vector<std::string> header_lines;  ///< device, driver, calibration file, command
  std::vector<validation_row> rows;
  std::vector<std::string> notes;

  /// Rows with a target that miss it.
  std::vector<validation_row> misses() const;
};

std::string render_markdown(const validation_report& r);
std::string render_text(const validation_report& r);

}  // namespace gpucal::engine
