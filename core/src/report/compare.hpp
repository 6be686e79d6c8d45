#pragma once
// Ratios of every trial of a sweep to a baseline backend's trial at the same grid point: the
// matching that `attnlab compare` and the report share (each kind's compare table is its own:
// TrialKind::compare).
//
// Matching: a trial's baseline is a done trial of the baseline backend whose parameters agree
// on everything except the backend and its backend.<name> parameters (same seq_len, pass,
// batch, ...). A baseline may pin backend parameters: "dense/execution=sdpa". When several
// baseline trials match (dense with execution = sdpa and math), the first in sweep order is
// the baseline, so the other variants get a ratio to it. A trial with no match, or a
// baseline value of 0, gets empty ratios.
#include "report/sweep_data.hpp"

#include <map>
#include <string>

namespace attnlab::report {

struct BaselineSpec {
  std::string backend;
  std::map<std::string, std::string> params;  // backend.<name> -> value
};

// Parses "dense" or "dense/execution=sdpa/tile=64"; throws std::invalid_argument on a bad form.
BaselineSpec parse_baseline(const std::string& text);

// Throws std::invalid_argument listing the candidates when the baseline matches trials of more
// than one variant of its backend (dense with execution = sdpa and math): `attnlab compare`
// refuses to pick one silently.
void require_one_baseline_variant(const SweepData& sweep, const BaselineSpec& baseline, const std::string& text);

// The baseline trial for `trial`, or nullptr.
const TrialData* find_baseline(const SweepData& sweep, const BaselineSpec& baseline, const TrialData& trial);

// numerator / denominator, or nothing when either is missing or the denominator is 0.
std::optional<double> ratio(std::optional<double> numerator, std::optional<double> denominator);

// A number of a compare table: 6 significant digits, nothing for nothing.
std::optional<std::string> number(std::optional<double> value);

}  // namespace attnlab::report
