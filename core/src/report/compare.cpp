#include "report/compare.hpp"

#include <cstdio>
#include <set>
#include <stdexcept>

namespace attnlab::report {

BaselineSpec parse_baseline(const std::string& text) {
  BaselineSpec spec;
  size_t start = text.find('/');
  spec.backend = text.substr(0, start);
  if (spec.backend.empty())
    throw std::invalid_argument("--baseline '" + text + "': expected BACKEND or BACKEND/param=value[/...]");
  while (start != std::string::npos) {
    const size_t next = text.find('/', start + 1);
    const std::string item = text.substr(start + 1, next == std::string::npos ? std::string::npos : next - start - 1);
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      throw std::invalid_argument("--baseline '" + text + "': '" + item + "' is not param=value");
    spec.params["backend." + item.substr(0, eq)] = item.substr(eq + 1);
    start = next;
  }
  return spec;
}

const TrialData* find_baseline(const SweepData& sweep, const BaselineSpec& baseline, const TrialData& trial) {
  const std::string key = axes_key(trial);
  for (const auto& candidate : sweep.trials) {
    if (candidate.backend != baseline.backend || candidate.status != "done" || axes_key(candidate) != key) continue;
    bool pinned = true;
    for (const auto& [name, value] : baseline.params) pinned = pinned && candidate.param(name) == value;
    if (!pinned) continue;
    return &candidate;
  }
  return nullptr;
}

void require_one_baseline_variant(const SweepData& sweep, const BaselineSpec& baseline, const std::string& text) {
  std::set<std::string> variants;
  for (const auto& t : sweep.trials) {
    if (t.backend != baseline.backend) continue;
    bool pinned = true;
    for (const auto& [name, value] : baseline.params) pinned = pinned && t.param(name) == value;
    if (pinned) variants.insert(sweep.variant_label(t));
  }
  if (variants.size() <= 1) return;
  std::string listed;
  for (const auto& v : variants) listed += (listed.empty() ? "" : ", ") + v;
  // A variant label ("dense/execution=sdpa") is itself a pinned --baseline.
  throw std::invalid_argument("--baseline " + text + " matches " + std::to_string(variants.size()) +
                              " variants of '" + baseline.backend + "': " + listed +
                              "; pin one, e.g. --baseline " + *variants.begin());
}

std::optional<double> ratio(std::optional<double> numerator, std::optional<double> denominator) {
  if (!numerator || !denominator || *denominator == 0.0) return std::nullopt;
  return *numerator / *denominator;
}

std::optional<std::string> number(std::optional<double> value) {
  if (!value) return std::nullopt;
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.6g", *value);
  return std::string(buffer);
}

}  // namespace attnlab::report
