// compare_close (see compare.hpp).
#include "gpucal/kernels/compare.hpp"

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace gpucal::kernels {

compare_report compare_close(const std::vector<double>& got, const std::vector<double>& ref, double atol, double rtol) {
  if (got.size() != ref.size()) throw std::invalid_argument("compare_close: sizes differ");
  compare_report r;
  r.count = got.size();
  double diff2 = 0, ref2 = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double g = got[i], e = ref[i];
    const double err = std::fabs(g - e);
    const bool nan = std::isnan(g) || std::isnan(e);
    if (nan) ++r.nans;
    if (nan || !(err <= atol + rtol * std::fabs(e))) {
      ++r.mismatches;
      if (r.first_mismatches.size() < 8) r.first_mismatches.push_back(i);
    }
    if (!nan) {
      r.max_abs_error = std::max(r.max_abs_error, err);
      if (std::fabs(e) > atol) r.max_rel_error = std::max(r.max_rel_error, err / std::fabs(e));
      diff2 += err * err;
      ref2 += e * e;
    }
  }
  r.rel_frobenius = ref2 > 0 ? std::sqrt(diff2 / ref2) : std::sqrt(diff2);
  return r;
}

double rms(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x * x;
  return v.empty() ? 0 : std::sqrt(s / static_cast<double>(v.size()));
}

std::string compare_report::describe(const std::vector<double>& got, const std::vector<double>& ref) const {
  std::ostringstream o;
  o << mismatches << " of " << count << " elements outside the bound (" << nans << " NaN); max abs error "
    << max_abs_error << ", max rel error " << max_rel_error << ", rel Frobenius " << rel_frobenius;
  for (std::size_t i : first_mismatches) o << "\n  [" << i << "] got " << got[i] << " expected " << ref[i];
  return o.str();
}

}  // namespace gpucal::kernels
