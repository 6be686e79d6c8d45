// The median pruner (pruner.hpp).
#include "engine/pruner.hpp"

#include "base/median.hpp"
#include "base/trial_stop.hpp"
#include "runtime/store.hpp"

#include <algorithm>
#include <sstream>

namespace attnlab::engine {

MedianPruner::MedianPruner(const SweepHead& sweep, std::string db_path, std::string seq_len)
    : active_(sweep.prune == "median" && !db_path.empty()),
      sweep_(sweep.name),
      metric_(sweep.prune_metric),
      db_path_(std::move(db_path)),
      seq_len_(std::move(seq_len)),
      warmup_(sweep.prune_warmup),
      min_trials_(sweep.prune_min_trials) {}

MedianPruner::~MedianPruner() = default;

std::optional<double> MedianPruner::median_at(ResultStore& store, const std::string& sweep, const std::string& seq_len,
                                              const std::string& metric, std::int64_t step, std::int64_t min_trials) {
  const auto rows = store.query(R"SQL(SELECT m.value FROM metrics m
      JOIN trials t ON t.id = m.trial_id JOIN sweeps s ON s.id = t.sweep_id
      JOIN params p ON p.trial_id = t.id AND p.name = 'seq_len'
    WHERE s.name = ?1 AND t.status = 'done' AND m.name = ?2 AND m.step = CAST(?3 AS INTEGER) AND p.value = ?4
      AND m.value IS NOT NULL)SQL",
                                {sweep, metric, std::to_string(step), seq_len});
  std::vector<double> values;
  for (const auto& row : rows.rows)
    if (row[0]) values.push_back(std::stod(*row[0]));
  if (values.empty() || static_cast<std::int64_t>(values.size()) < min_trials) return std::nullopt;
  return median_of(std::move(values));
}

void MedianPruner::observe(const std::string& name, std::int64_t step, double value) {
  if (!active_ || name != metric_ || step < 0) return;
  best_ = logged_ == 0 ? value : std::min(best_, value);
  if (++logged_ <= warmup_) return;
  if (!store_) store_ = std::make_unique<ResultStore>(db_path_, /*read_only=*/true);
  const auto median = median_at(*store_, sweep_, seq_len_, metric_, step, min_trials_);
  if (!median || !(best_ > *median)) return;
  std::ostringstream why;
  why << "pruned at step " << step << ": best " << metric_ << " so far " << best_ << " is worse than the median "
      << *median << " of the finished trials at that step (median pruner, after " << warmup_ << " logged steps)";
  throw TrialStopped("pruned", why.str());
}

}  // namespace attnlab::engine
