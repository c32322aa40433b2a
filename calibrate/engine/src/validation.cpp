// Rendering of the validation table (see validation.hpp).
#include "gpucal/engine/validation.hpp"

#include <fmt/format.h>

#include <cmath>

namespace gpucal::engine {

double validation_row::error_pct() const { return (predicted - measured) / measured * 100.0; }

bool validation_row::meets_target() const { return target_pct <= 0 || std::abs(error_pct()) <= target_pct; }

std::vector<validation_row> validation_report::misses() const {
  std::vector<validation_row> out;
  for (const auto& r : rows)
    if (!r.meets_target()) out.push_back(r);
  return out;
}

namespace {

std::string number(double v, const std::string& unit) {
  if (unit == "blocks" || unit == "bytes") return fmt::format("{:.0f}", v);
  return fmt::format("{:.3f}", v);
}

std::string verdict(const validation_row& r) {
  if (r.target_pct <= 0) return "reported";
  return fmt::format("{} (±{:.0f} %)", r.meets_target() ? "ok" : "MISS", r.target_pct);
}

}  // namespace

std::string render_markdown(const validation_report& r) {
  std::string out = "# Model against the reference engine\n\n";
  for (const auto& l : r.header_lines) out += fmt::format("- {}\n", l);
  out += "\n| model | quantity | unit | predicted | measured | error % | target |\n";
  out += "|---|---|---|---:|---:|---:|---|\n";
  for (const auto& row : r.rows)
    out += fmt::format("| {} | {} | {} | {} | {} | {:+.2f} | {} |\n", row.model, row.quantity, row.unit,
                       number(row.predicted, row.unit), number(row.measured, row.unit), row.error_pct(), verdict(row));
  const auto miss = r.misses();
  out += fmt::format("\n{} of {} rows with a target meet it.\n", [&] {
    std::size_t n = 0;
    for (const auto& row : r.rows) n += row.target_pct > 0 ? 1 : 0;
    return n - miss.size();
  }(), [&] {
    std::size_t n = 0;
    for (const auto& row : r.rows) n += row.target_pct > 0 ? 1 : 0;
    return n;
  }());
  if (!r.notes.empty()) {
    out += "\n## Notes\n\n";
    for (const auto& n : r.notes) out += fmt::format("- {}\n", n);
  }
  return out;
}

std::string render_text(const validation_report& r) {
  std::string out;
  for (const auto& l : r.header_lines) out += l + "\n";
  out += fmt::format("{:<16} {:<34} {:>7} {:>14} {:>14} {:>9}  {}\n", "model", "quantity", "unit", "predicted", "measured",
                     "error %", "target");
  for (const auto& row : r.rows)
    out += fmt::format("{:<16} {:<34} {:>7} {:>14} {:>14} {:>+9.2f}  {}\n", row.model, row.quantity, row.unit,
                       number(row.predicted, row.unit), number(row.measured, row.unit), row.error_pct(), verdict(row));
  for (const auto& n : r.notes) out += "note: " + n + "\n";
  return out;
}

}  // namespace gpucal::engine
