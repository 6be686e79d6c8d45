#pragma once
// Ratios of every trial of a sweep to a baseline backend's trial at the same grid point.
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

// The compare table. Bench sweeps: one row per trial with median_ms, peak_mib and their
// ratios. Distill sweeps: one row per (trial, eval length) with ms_per_step, peak_mib,
// student_ppl, kl and their ratios. Numbers are printed with 6 significant digits.
ResultStore::Table compare_table(const SweepData& sweep, const BaselineSpec& baseline);

// Eval lengths T that have eval/T<T>/... metrics in the sweep, ascending.
std::vector<std::int64_t> eval_lengths(const SweepData& sweep);

}  // namespace attnlab::report
