#pragma once
// The median of a sample (the mean of the two middle values for an even count; NaN when
// empty): what timings, pruners and before/after comparisons summarise repeats by.
#include <algorithm>
#include <cmath>
#include <vector>

namespace attnlab {

inline double median_of(std::vector<double> values) {
  if (values.empty()) return std::nan("");
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

}  // namespace attnlab
