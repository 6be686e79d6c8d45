#include "report/history.hpp"

#include "report/stats.hpp"

#include <SQLiteCpp/SQLiteCpp.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <stdexcept>

namespace attnlab::report {
namespace {

// The samples a trial is compared by: metric name -> values in step order.
using Samples = std::map<std::string, std::vector<double>>;

// Which curves carry a trial's samples: the timed repeats, or the per-window NLL of each
// evaluation length in the deployed mode (hard_ when the trial has it).
bool compared_metric(const std::string& name) {
  return name == "time/repeat_ms" || (name.rfind("eval/T", 0) == 0 && name.size() > 11 &&
                                      name.compare(name.size() - 11, 11, "/window_nll") == 0);
}

void keep_deployed(Samples& samples) {
  for (auto it = samples.begin(); it != samples.end();) {
    const auto slash = it->first.rfind('/');
    const std::string hard = it->first.substr(0, slash + 1) + "hard_" + it->first.substr(slash + 1);
    it = samples.count(hard) ? samples.erase(it) : std::next(it);
  }
}

// Per trial key of the sweep: its name and samples, from `sql` (bound to the sweep's name and
// an optional run id) returning key, name, metric, value in step order.
std::map<std::string, std::pair<std::string, Samples>> read_samples(SQLite::Database& db, const std::string& sql,
                                                                  const std::string& sweep,
                                                                  std::optional<std::int64_t> run = std::nullopt) {
  SQLite::Statement q(db, sql);
  q.bind(1, sweep);
  if (run) q.bind(2, static_cast<int64_t>(*run));
  std::map<std::string, std::pair<std::string, Samples>> out;
  while (q.executeStep()) {
    const std::string metric = q.getColumn(2).getString();
    if (!compared_metric(metric) || q.getColumn(3).isNull()) continue;
    auto& entry = out[q.getColumn(0).getString()];
    entry.first = q.getColumn(1).getString();
    entry.second[metric].push_back(q.getColumn(3).getDouble());
  }
  for (auto& [key, entry] : out) keep_deployed(entry.second);
  return out;
}

const char* kLatest = R"SQL(SELECT t.key, t.name, m.name, m.value FROM metrics m JOIN trials t ON t.id = m.trial_id
  JOIN sweeps s ON s.id = t.sweep_id WHERE s.name = ?1 AND t.status = 'done' AND m.step >= 0 ORDER BY t.id, m.name, m.step)SQL";

std::vector<PairedTrial> pair(const std::map<std::string, std::pair<std::string, Samples>>& now,
                              const std::map<std::string, std::pair<std::string, Samples>>& before,
                              const std::string& what) {
  std::vector<PairedTrial> pairs;
  for (const auto& [key, entry] : now) {
    const auto it = before.find(key);
    if (it == before.end()) continue;
    for (const auto& [metric, values] : entry.second)
      if (auto m = it->second.second.find(metric); m != it->second.second.end())
        pairs.push_back({key, entry.first, metric, values, m->second});
  }
  if (pairs.empty())
    throw std::runtime_error("no trial has results both here and in " + what +
                             " (trials are paired by key: the same sweep, grid point and parameters)");
  return pairs;
}

}  // namespace

std::vector<PairedTrial> pair_with_database(ResultStore& store, const std::string& sweep, const std::string& other) {
  if (!std::filesystem::exists(other)) throw std::runtime_error("--against " + other + ": no such file");
  // Read-only; the other file may be live in WAL mode, so not immutable.
  SQLite::Database db(other, SQLite::OPEN_READONLY);
  try {
    SQLite::Statement probe(db, "SELECT version FROM schema_info");
    (void)probe.executeStep();
    SQLite::Statement trials(db, "SELECT key FROM trials LIMIT 1");
    (void)trials.executeStep();
  } catch (const SQLite::Exception& e) {
    throw std::runtime_error("--against " + other + " is not an attnlab results database (" + e.what() + ")");
  }
  return pair(read_samples(store.db(), kLatest, sweep), read_samples(db, kLatest, sweep), other);
}

std::vector<PairedTrial> pair_with_run(ResultStore& store, const std::string& sweep, std::int64_t run) {
  // Run N's results: superseded by a later run, or still the latest when N made them.
  const char* sql = R"SQL(SELECT t.key, t.name, x.name, x.value FROM superseded_metrics x
      JOIN trials t ON t.id = x.trial_id JOIN sweeps s ON s.id = t.sweep_id
    WHERE s.name = ?1 AND x.run_id = ?2 AND x.step >= 0
    UNION ALL
    SELECT t.key, t.name, m.name, m.value FROM metrics m JOIN trials t ON t.id = m.trial_id
      JOIN sweeps s ON s.id = t.sweep_id
    WHERE s.name = ?1 AND t.run_id = ?2 AND t.status = 'done' AND m.step >= 0
    ORDER BY 1, 3)SQL";
  SQLite::Statement known(store.db(), "SELECT 1 FROM runs WHERE id = ?");
  known.bind(1, static_cast<int64_t>(run));
  if (!known.executeStep()) throw std::runtime_error("--against-run " + std::to_string(run) + ": no such run");
  auto before = read_samples(store.db(), sql, sweep, run);
  return pair(read_samples(store.db(), kLatest, sweep), before, "run " + std::to_string(run));
}

BeforeAfter compare_before_after(const std::vector<PairedTrial>& pairs, std::optional<double> fail_pct) {
  BeforeAfter out;
  out.table.columns = {"trial", "metric", "n_now", "n_before", "median_now", "median_before", "ratio", "p_value",
                       "verdict", "flag"};
  std::vector<double> ratios;
  auto text = [](const char* format, double v) {
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, format, v);
    return std::string(buffer);
  };
  for (const auto& p : pairs) {
    const double now = median_of(p.now), before = median_of(p.before);
    const double ratio = before != 0 ? now / before : std::nan("");
    const double pvalue = mann_whitney_p(p.now, p.before);
    ratios.push_back(ratio);
    std::string verdict = pvalue >= 0.05 ? "no significant change" : ratio > 1 ? "higher" : "lower";
    if (fail_pct && pvalue < 0.05 && ratio > 1 + *fail_pct / 100) {
      verdict = "REGRESSION";
      out.regressions.push_back(p.name + " " + p.metric + ": " + text("%.3fx", ratio) + ", p = " + text("%.3g", pvalue));
    }
    // Repeats spread by more than 10% of their mean (either side) make any ratio suspect.
    const bool noisy = p.metric == "time/repeat_ms" && (coefficient_of_variation(p.now) > 0.1 ||
                                                       coefficient_of_variation(p.before) > 0.1);
    out.table.rows.push_back({p.name, p.metric, std::to_string(p.now.size()), std::to_string(p.before.size()),
                              text("%.6g", now), text("%.6g", before), text("%.4f", ratio), text("%.3g", pvalue),
                              verdict, std::string(noisy ? "noisy (cv > 10%)" : "")});
  }
  out.geomean = geometric_mean(ratios);
  return out;
}

}  // namespace attnlab::report
