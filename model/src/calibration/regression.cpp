// Mann-Whitney U and calibration comparison (see regression.hpp).
#include "gpucal/model/regression.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace gpucal::model {

namespace {

// Exact two-sided p of U for tie-free samples of sizes m and n: counts of
// rank arrangements giving each U, by the recurrence
// c(m, n, u) = c(m - 1, n, u - n) + c(m, n - 1, u).
double exact_p(int m, int n, double u) {
  // f[i][j][v]: arrangements of i values of the first sample and j of the
  // second with U = v. The largest value is either from the first sample
  // (it beats all j others: +j) or from the second (+0).
  std::vector<std::vector<std::vector<double>>> f(static_cast<std::size_t>(m + 1),
                                                  std::vector<std::vector<double>>(static_cast<std::size_t>(n + 1)));
  for (int i = 0; i <= m; ++i)
    for (int j = 0; j <= n; ++j) {
      auto& cell = f[static_cast<std::size_t>(i)][static_cast<std::size_t>(j)];
      cell.assign(static_cast<std::size_t>(i * j + 1), 0.0);
      if (i == 0 || j == 0) {
        cell[0] = 1;
        continue;
      }
      const auto& first = f[static_cast<std::size_t>(i - 1)][static_cast<std::size_t>(j)];
      const auto& second = f[static_cast<std::size_t>(i)][static_cast<std::size_t>(j - 1)];
      for (int v = 0; v <= i * j; ++v) {
        double count = 0;
        if (v - j >= 0 && v - j <= (i - 1) * j) count += first[static_cast<std::size_t>(v - j)];
        if (v <= i * (j - 1)) count += second[static_cast<std::size_t>(v)];
        cell[static_cast<std::size_t>(v)] = count;
      }
    }
  const auto& dist = f[static_cast<std::size_t>(m)][static_cast<std::size_t>(n)];
  const double total = std::accumulate(dist.begin(), dist.end(), 0.0);
  double le = 0, ge = 0;
  for (int v = 0; v <= m * n; ++v) {
    if (v <= u + 1e-9) le += dist[static_cast<std::size_t>(v)];
    if (v >= u - 1e-9) ge += dist[static_cast<std::size_t>(v)];
  }
  return std::min(1.0, 2 * std::min(le, ge) / total);
}

}  // namespace

mann_whitney_result mann_whitney_u(const std::vector<double>& a, const std::vector<double>& b) {
  mann_whitney_result r;
  const std::size_t n1 = a.size(), n2 = b.size(), n = n1 + n2;
  if (n1 == 0 || n2 == 0) return r;
  std::vector<std::pair<double, int>> all;
  for (double v : a) all.push_back({v, 0});
  for (double v : b) all.push_back({v, 1});
  std::sort(all.begin(), all.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
  double rank_sum_a = 0, tie_term = 0;
  bool ties = false;
  for (std::size_t i = 0; i < n;) {
    std::size_t j = i;
    while (j < n && all[j].first == all[i].first) ++j;
    const double avg_rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2;  // ranks i+1..j
    const double t = static_cast<double>(j - i);
    if (t > 1) ties = true;
    tie_term += t * t * t - t;
    for (std::size_t k = i; k < j; ++k)
      if (all[k].second == 0) rank_sum_a += avg_rank;
    i = j;
  }
  const double d1 = static_cast<double>(n1), d2 = static_cast<double>(n2), dn = static_cast<double>(n);
  r.u = rank_sum_a - d1 * (d1 + 1) / 2;
  if (!ties && n1 <= 30 && n2 <= 30) {
    r.exact = true;
    r.p = exact_p(static_cast<int>(n1), static_cast<int>(n2), r.u);
    return r;
  }
  const double mean = d1 * d2 / 2;
  const double var = d1 * d2 / 12 * ((dn + 1) - tie_term / (dn * (dn - 1)));
  if (var <= 0) return r;  // every value equal: no evidence of a difference
  const double z = (std::fabs(r.u - mean) - 0.5) / std::sqrt(var);
  r.p = std::min(1.0, std::erfc(std::max(z, 0.0) / std::sqrt(2.0)));
  return r;
}

comparison compare_calibrations(const calibration_file& old_file, const calibration_file& new_file,
                                double threshold_pct, double alpha) {
  comparison c;
  for (const auto& o : old_file.measurements) {
    const measurement* n = new_file.find(o.name);
    if (!n) {
      c.only_old.push_back(o.name);
      continue;
    }
    metric_change m;
    m.name = o.name;
    m.unit = o.unit;
    m.old_median = o.median();
    m.new_median = n->median();
    m.change_pct = m.old_median != 0 ? (m.new_median - m.old_median) / m.old_median * 100 : 0;
    m.p = mann_whitney_u(o.samples, n->samples).p;
    m.significant = m.p < alpha;
    const double worse_pct = o.higher_is_better() ? -m.change_pct : m.change_pct;
    m.regression = m.significant && worse_pct > threshold_pct;
    m.improvement = m.significant && -worse_pct > threshold_pct;
    c.regressions += m.regression;
    c.improvements += m.improvement;
    c.changes.push_back(m);
  }
  for (const auto& n : new_file.measurements)
    if (!old_file.find(n.name)) c.only_new.push_back(n.name);
  return c;
}

}  // namespace gpucal::model
