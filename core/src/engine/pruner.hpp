#pragma once
// The median pruner ([sweep] prune = "median"), Optuna's MedianPruner semantics: after
// prune_warmup logged steps, a trial whose best value of prune_metric so far is worse (higher)
// than the median of that metric at the same step over the finished ('done') trials of the
// same sweep and seq_len is stopped, status 'pruned', keeping its curves. Nothing is pruned
// while fewer than prune_min_trials finished trials have a value at that step.
//
// The finished trials are read from the database the worker writes (read-only, WAL lets a
// reader in beside writers), so every worker of one database, local or `--jobs N`, prunes
// against all of them. A Slurm shard writes its own database: there the median is over that
// shard's finished trials (documented in docs/ENGINE.md).
#include "runtime/config.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace attnlab {
class ResultStore;
}

namespace attnlab::engine {

class MedianPruner {
 public:
  // Inactive (observe never throws) unless sweep.prune == "median".
  MedianPruner(const SweepHead& sweep, std::string db_path, std::string seq_len);
  ~MedianPruner();

  // Every logged value of every metric goes through here; throws TrialStopped("pruned") when
  // `name` is the watched metric and the rule says stop.
  void observe(const std::string& name, std::int64_t step, double value);

  // The median of the finished trials' values of `metric` at `step` (none below min_trials).
  static std::optional<double> median_at(ResultStore& store, const std::string& sweep, const std::string& seq_len,
                                         const std::string& metric, std::int64_t step, std::int64_t min_trials);

 private:
  bool active_ = false;
  std::string sweep_, metric_, db_path_, seq_len_;
  std::int64_t warmup_ = 0, min_trials_ = 1, logged_ = 0;
  double best_ = 0;
  std::unique_ptr<ResultStore> store_;  // opened at the first step past warmup
};

}  // namespace attnlab::engine
