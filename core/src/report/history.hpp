#pragma once
// Before/after: the trials of one sweep paired by trial key with the same trials in another
// database (--against OTHER.sqlite) or with their results of an earlier run that a rerun
// superseded (--against-run N), tested per trial and summarised by a geometric mean, as
// google/benchmark's compare.py does for kernels.
//
// What is compared, per trial: bench trials' timed repeats (time/repeat_ms); distill trials'
// per-window student NLL at each evaluation length (eval/T<T>/window_nll, the deployed mode
// when there is one). Each row: both medians, ratio = now / before (> 1: slower or worse),
// and a two-sided Mann-Whitney U p-value over the two samples.
#include "runtime/store.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace attnlab::report {

struct PairedTrial {
  std::string key, name, metric;
  std::vector<double> now, before;
};

// Throws std::runtime_error when `other` is not an attnlab database, the sweep is in neither,
// or no trial has results on both sides.
std::vector<PairedTrial> pair_with_database(ResultStore& store, const std::string& sweep, const std::string& other);
std::vector<PairedTrial> pair_with_run(ResultStore& store, const std::string& sweep, std::int64_t run);

struct BeforeAfter {
  ResultStore::Table table;
  double geomean = 0;                // of the ratios
  std::vector<std::string> regressions;  // rows slower/worse by more than the threshold with p < 0.05
};
// `fail_pct`: a ratio above 1 + fail_pct / 100 with p < 0.05 is a regression (none when unset).
BeforeAfter compare_before_after(const std::vector<PairedTrial>& pairs, std::optional<double> fail_pct);

}  // namespace attnlab::report
