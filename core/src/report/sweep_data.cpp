#include "report/sweep_data.hpp"

#include <SQLiteCpp/SQLiteCpp.h>

#include <algorithm>
#include <set>
#include <stdexcept>

namespace attnlab::report {

std::optional<double> TrialData::final_metric(const std::string& metric) const {
  auto it = finals.find(metric);
  if (it == finals.end()) return std::nullopt;
  return it->second;
}

std::string TrialData::param(const std::string& key) const {
  auto it = params.find(key);
  return it == params.end() ? std::string() : it->second;
}

bool is_backend_param(const std::string& name) { return name == "backend" || name.rfind("backend.", 0) == 0; }

std::string axes_key(const TrialData& trial) {
  std::string key;
  for (const auto& [name, value] : trial.params)
    if (!is_backend_param(name)) key += name + "=" + value + ";";
  return key;
}

std::vector<std::string> SweepData::varying_params() const {
  std::map<std::string, std::set<std::string>> values;
  for (const auto& t : trials)
    for (const auto& [name, value] : t.params) values[name].insert(value);
  std::vector<std::string> out;
  for (const auto& [name, seen] : values) {
    // A parameter some trials lack also varies (a backend-only axis).
    bool everywhere = std::all_of(trials.begin(), trials.end(), [&](const TrialData& t) { return t.params.count(name); });
    if (seen.size() > 1 || !everywhere) out.push_back(name);
  }
  return out;
}

std::vector<std::string> SweepData::varying_backend_params(const std::string& backend) const {
  std::map<std::string, std::set<std::string>> values;
  for (const auto& t : trials)
    if (t.backend == backend)
      for (const auto& [name, value] : t.params)
        if (name.rfind("backend.", 0) == 0) values[name].insert(value);
  std::vector<std::string> out;
  for (const auto& [name, seen] : values)
    if (seen.size() > 1) out.push_back(name);
  return out;
}

std::string SweepData::variant_label(const TrialData& trial) const {
  std::string label = trial.backend;
  for (const auto& name : varying_backend_params(trial.backend))
    label += "/" + name.substr(std::string("backend.").size()) + "=" + trial.param(name);
  return label;
}

namespace {

SweepData load_one(ResultStore& store, const std::string& sweep) {
  auto found = store.query("SELECT id, kind FROM sweeps WHERE name = ?1", {sweep});
  if (found.rows.empty()) {
    auto names = store.query("SELECT name FROM sweeps ORDER BY name");
    std::string known;
    for (const auto& row : names.rows) known += (known.empty() ? "" : ", ") + row[0].value_or("");
    throw std::runtime_error("no sweep named '" + sweep + "' in the database (sweeps: " +
                             (known.empty() ? "none" : known) + ")");
  }
  SweepData data;
  data.name = sweep;
  data.kind = found.rows[0][1].value_or("");
  const std::string sweep_id = found.rows[0][0].value_or("0");

  std::map<std::int64_t, size_t> index;
  auto trials = store.query("SELECT id, run_id, name, backend, status, error FROM trials WHERE sweep_id = " + sweep_id +
                            " ORDER BY id");
  for (const auto& row : trials.rows) {
    TrialData t;
    t.id = std::stoll(*row[0]);
    if (row[1]) t.run_id = std::stoll(*row[1]);
    t.name = row[2].value_or("");
    t.backend = row[3].value_or("");
    t.status = row[4].value_or("");
    t.error = row[5].value_or("");
    t.sweep = sweep;
    index[t.id] = data.trials.size();
    data.trials.push_back(std::move(t));
  }
  const std::string in_sweep = " IN (SELECT id FROM trials WHERE sweep_id = " + sweep_id + ")";
  for (const auto& row : store.query("SELECT trial_id, name, value FROM params WHERE trial_id" + in_sweep).rows)
    data.trials[index.at(std::stoll(*row[0]))].params[row[1].value_or("")] = row[2].value_or("");
  // Read as doubles (not through query()'s text) so ratios and tables see every bit.
  SQLite::Statement metrics(store.db(), "SELECT trial_id, name, value FROM metrics WHERE step = -1 AND value IS NOT NULL "
                                        "AND trial_id" + in_sweep);
  while (metrics.executeStep())
    data.trials[index.at(metrics.getColumn(0).getInt64())].finals[metrics.getColumn(1).getString()] =
        metrics.getColumn(2).getDouble();
  return data;
}

}  // namespace

SweepData load_sweep_data(ResultStore& store, const std::string& sweeps) {
  std::vector<std::string> names;
  for (std::size_t start = 0; start <= sweeps.size();) {
    const auto comma = std::min(sweeps.find(',', start), sweeps.size());
    if (comma > start) names.push_back(sweeps.substr(start, comma - start));
    start = comma + 1;
  }
  if (names.empty()) throw std::runtime_error("no sweep name given (--sweep NAME, or NAME,NAME,... for several)");
  SweepData data = load_one(store, names.front());
  data.names = {names.front()};
  // A study of several sweeps (e.g. trained students and their untrained controls): one set
  // of trials, each named after its sweep so that equal names from two sweeps stay apart.
  if (names.size() > 1) {
    for (auto& t : data.trials) t.name = names.front() + ": " + t.name;
    for (std::size_t i = 1; i < names.size(); ++i) {
      SweepData more = load_one(store, names[i]);
      if (more.kind != data.kind)
        throw std::runtime_error("sweep '" + names[i] + "' is kind " + more.kind + ", '" + names.front() + "' is kind " +
                                 data.kind + ": one report holds one kind");
      for (auto& t : more.trials) {
        t.name = names[i] + ": " + t.name;
        data.trials.push_back(std::move(t));
      }
      data.names.push_back(names[i]);
    }
    data.name = sweeps;
  }
  return data;
}

std::vector<std::pair<std::int64_t, double>> load_curve(ResultStore& store, std::int64_t trial_id,
                                                       const std::string& metric) {
  std::vector<std::pair<std::int64_t, double>> out;
  SQLite::Statement rows(store.db(), "SELECT step, value FROM metrics WHERE step >= 0 AND value IS NOT NULL "
                                     "AND trial_id = ? AND name = ? ORDER BY step");
  rows.bind(1, static_cast<int64_t>(trial_id));
  rows.bind(2, metric);
  while (rows.executeStep()) out.emplace_back(rows.getColumn(0).getInt64(), rows.getColumn(1).getDouble());
  return out;
}

std::vector<std::string> curve_names(ResultStore& store, std::int64_t trial_id, const std::string& prefix) {
  std::vector<std::string> out;
  auto rows = store.query("SELECT DISTINCT name FROM metrics WHERE step >= 0 AND trial_id = CAST(?1 AS INTEGER) "
                          "AND substr(name, 1, length(?2)) = ?2 ORDER BY name",
                          {std::to_string(trial_id), prefix});
  for (const auto& row : rows.rows) out.push_back(row[0].value_or(""));
  return out;
}

}  // namespace attnlab::report
