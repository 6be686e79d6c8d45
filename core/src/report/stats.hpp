#pragma once
// Small statistics for before/after comparisons (attnlab compare --against).
#include "base/median.hpp"

#include <vector>

namespace attnlab::report {

using attnlab::median_of;
// Sample standard deviation over the mean (0 for fewer than two values or a zero mean).
double coefficient_of_variation(const std::vector<double>& values);

// Two-sided p-value of the Mann-Whitney U test that `a` and `b` come from one distribution
// (google/benchmark's compare.py uses the same test on repetition times). Exact when both
// samples have at most 50 values and no value is tied (the U distribution counted by its
// recurrence); otherwise the normal approximation with tie and continuity corrections (as
// scipy's `method='asymptotic'`). 1 when either sample is empty.
double mann_whitney_p(const std::vector<double>& a, const std::vector<double>& b);

// exp(mean(log r)) over the positive ratios; 0 when there are none.
double geometric_mean(const std::vector<double>& ratios);

}  // namespace attnlab::report
