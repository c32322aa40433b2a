// Regression tracking between two calibration files: per metric, the change
// of the median in %, and whether it is significant given both files'
// samples (two-sided Mann-Whitney U; exact distribution for small tie-free
// samples, normal approximation with tie and continuity corrections
// otherwise; significant at p < alpha, 0.01 by default).
#pragma once

#include <string>
#include <vector>

#include "gpucal/model/calibration.hpp"

namespace gpucal::model {

struct mann_whitney_result {
  double u = 0;        ///< U of the first sample
  double p = 1;        ///< two-sided p-value
  bool exact = false;  ///< exact distribution (no ties, both samples <= 30)
};

mann_whitney_result mann_whitney_u(const std::vector<double>& a, const std::vector<double>& b);

struct metric_change {
  std::string name;
  std::string unit;
  double old_median = 0, new_median = 0;
  double change_pct = 0;  ///< (new - old) / old x 100
  double p = 1;
  bool significant = false;
  bool regression = false;   ///< significant, worse, and beyond the threshold
  bool improvement = false;  ///< significant, better, and beyond the threshold
};

struct comparison {
  std::vector<metric_change> changes;
  std::vector<std::string> only_old, only_new;
  int regressions = 0;
  int improvements = 0;
};

comparison compare_calibrations(const calibration_file& old_file, const calibration_file& new_file,
                                double threshold_pct, double alpha = 0.01);

}  // namespace gpucal::model
