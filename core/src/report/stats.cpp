#include "report/stats.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

namespace attnlab::report {

double coefficient_of_variation(const std::vector<double>& values) {
  if (values.size() < 2) return 0;
  double mean = 0, squares = 0;
  for (double v : values) mean += v;
  mean /= double(values.size());
  for (double v : values) squares += (v - mean) * (v - mean);
  return mean != 0 ? std::sqrt(squares / double(values.size() - 1)) / std::abs(mean) : 0;
}

namespace {

// P(U <= u) under the null, no ties: counts of arrangements by the recurrence
// c(u; m, n) = c(u - n; m - 1, n) + c(u; m, n - 1), over C(m + n, m).
double exact_cdf(int m, int n, int u) {
  // table[i][j][v]: arrangements of i a's and j b's with U = v; built row by row over i.
  const int max_u = m * n;
  std::vector<std::vector<double>> previous(n + 1, std::vector<double>(max_u + 1, 0.0));
  for (int j = 0; j <= n; ++j) previous[j][0] = 1.0;  // i = 0: U is 0
  for (int i = 1; i <= m; ++i) {
    std::vector<std::vector<double>> current(n + 1, std::vector<double>(max_u + 1, 0.0));
    current[0][0] = 1.0;
    for (int j = 1; j <= n; ++j)
      for (int v = 0; v <= i * j; ++v)
        current[j][v] = (v >= j ? previous[j][v - j] : 0.0) + current[j - 1][v];
    previous = std::move(current);
  }
  double below = 0, total = 0;
  for (int v = 0; v <= max_u; ++v) {
    total += previous[n][v];
    if (v <= u) below += previous[n][v];
  }
  return below / total;
}

}  // namespace

double mann_whitney_p(const std::vector<double>& a, const std::vector<double>& b) {
  const std::size_t m = a.size(), n = b.size();
  if (m == 0 || n == 0) return 1.0;
  // Ranks of the pooled sample, ties sharing their mean rank.
  std::vector<std::pair<double, int>> pooled;
  for (double x : a) pooled.emplace_back(x, 0);
  for (double x : b) pooled.emplace_back(x, 1);
  std::sort(pooled.begin(), pooled.end());
  double rank_sum_a = 0, tie_term = 0;
  bool ties = false;
  for (std::size_t i = 0; i < pooled.size();) {
    std::size_t j = i;
    while (j < pooled.size() && pooled[j].first == pooled[i].first) ++j;
    const double rank = 0.5 * double(i + 1 + j);  // mean of ranks i+1 .. j
    const double t = double(j - i);
    if (t > 1) ties = true;
    tie_term += t * t * t - t;
    for (std::size_t k = i; k < j; ++k)
      if (pooled[k].second == 0) rank_sum_a += rank;
    i = j;
  }
  const double u_a = rank_sum_a - double(m) * double(m + 1) / 2.0;
  const double u_min = std::min(u_a, double(m) * double(n) - u_a);
  if (!ties && m <= 50 && n <= 50)
    return std::min(1.0, 2.0 * exact_cdf(static_cast<int>(m), static_cast<int>(n), static_cast<int>(std::lround(u_min))));
  const double N = double(m + n);
  const double variance = double(m) * double(n) / 12.0 * ((N + 1) - tie_term / (N * (N - 1)));
  if (variance <= 0) return 1.0;
  const double z = (double(m) * double(n) / 2.0 - u_min - 0.5) / std::sqrt(variance);
  return std::min(1.0, std::erfc(std::max(z, 0.0) / std::sqrt(2.0)));
}

double geometric_mean(const std::vector<double>& ratios) {
  double logs = 0;
  int n = 0;
  for (double r : ratios)
    if (r > 0 && std::isfinite(r)) logs += std::log(r), ++n;
  return n ? std::exp(logs / n) : 0.0;
}

}  // namespace attnlab::report
