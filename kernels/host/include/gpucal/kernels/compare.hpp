// Element-wise comparison of a kernel's output with its reference:
// |got - ref| <= atol + rtol |ref| for every element, NaN never passing,
// plus the relative Frobenius error ||got - ref|| / ||ref||.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace gpucal::kernels {

struct compare_report {
  std::size_t count = 0;
  std::size_t mismatches = 0;  ///< elements outside the bound (NaN included)
  std::size_t nans = 0;
  double max_abs_error = 0;
  double max_rel_error = 0;    ///< over elements with |ref| > atol
  double rel_frobenius = 0;
  std::vector<std::size_t> first_mismatches;  ///< up to 8 indices

  bool ok() const { return mismatches == 0; }
  /// One paragraph for a test failure message.
  std::string describe(const std::vector<double>& got, const std::vector<double>& ref) const;
};

/// Root mean square of the values (0 for none): the scale absolute tolerances are set against.
double rms(const std::vector<double>& v);

compare_report compare_close(const std::vector<double>& got, const std::vector<double>& ref, double atol, double rtol);

}  // namespace gpucal::kernels
