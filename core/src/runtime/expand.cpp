// A sweep expanded into its trials (config.hpp): the grid's product, each point times the
// product of its backend's own axes, each trial with its resolved config, stable key and name.
#include "runtime/config.hpp"

#include <random>

namespace attnlab {
namespace {

using json = nlohmann::json;

// The product's size, computed before any trial is: a typo of an axis (a range written out by
// a script gone wrong) must not exhaust memory before it is reported.
double trial_count(const SweepSpec& sweep) {
  double grid = 1, count = 0;
  const Axis* backend_axis = nullptr;
  for (const auto& a : sweep.grid) {
    if (a.name == "backend") backend_axis = &a;
    else grid *= static_cast<double>(a.values.size());
  }
  for (const auto& b : backend_axis ? backend_axis->values : std::vector<json>{}) {
    double per_backend = grid;
    if (auto it = sweep.backend_axes.find(b.get<std::string>()); it != sweep.backend_axes.end())
      for (const auto& a : it->second) per_backend *= static_cast<double>(a.values.size());
    count += per_backend;
  }
  return count;
}

// Every combination of one value per axis, in the order of nested loops over the axes (the
// last one turns fastest): `chosen` holds the value index of each axis; false after the last.
// No axis is empty (read_axis refuses an empty list).
bool next_combination(std::vector<std::size_t>& chosen, const std::vector<Axis>& axes) {
  for (std::size_t i = axes.size(); i-- > 0;) {
    if (++chosen[i] < axes[i].values.size()) return true;
    chosen[i] = 0;
  }
  return false;
}

// "/name:value" in a trial's name, for an axis with more than one value.
std::string name_part(const Axis& axis, const json& value) {
  if (axis.values.size() < 2) return "";
  return "/" + axis.name + ":" + (value.is_string() ? value.get<std::string>() : value.dump());
}

// The backend's parameters of one trial, checked against its schema: an error points at the
// value that made it fail, or where the backend is named.
std::map<std::string, ParamValue> checked_params(const SweepSpec& sweep, const BackendCatalog& backends,
                                                 const std::string& backend, const std::vector<Axis>& axes,
                                                 const std::vector<std::size_t>& chosen) {
  std::map<std::string, ParamValue> given;
  for (std::size_t a = 0; a < axes.size(); ++a) given[axes[a].name] = json_to_param(axes[a].values[chosen[a]]);
  try {
    return backends.check_params(backend, given).values();
  } catch (const ParamError& e) {
    std::string at = sweep.backend_where.count(backend) ? sweep.backend_where.at(backend) : sweep.path;
    for (std::size_t a = 0; a < axes.size(); ++a)
      if (axes[a].name == e.key) at = axes[a].where[chosen[a]];
    throw ConfigError(at + ": [backend." + backend + "] " + e.what() + (e.hint.empty() ? "" : " (hint: " + e.hint + ")"));
  }
}

TrialSpec make_trial(const SweepSpec& sweep, const BackendCatalog& backends, const json& grid_point,
                     const std::vector<Axis>& axes, const std::vector<std::size_t>& chosen) {
  TrialSpec trial;
  trial.backend = grid_point["backend"].get<std::string>();
  trial.backend_params = checked_params(sweep, backends, trial.backend, axes, chosen);
  json params = json::object();
  for (const auto& [k, v] : trial.backend_params) params[k] = to_json(v);
  trial.config = {{"sweep", sweep.name}, {"kind", sweep.kind}, {"seed", sweep.seed},
                  {"warmup", sweep.warmup}, {"repeats", sweep.repeats}, {"device", sweep.device},
                  {"grid", grid_point}, {"backend_params", params}};
  // Only when set, so the keys of sweeps without it (and their databases) stay valid.
  if (sweep.min_time_s > 0) trial.config["min_time_s"] = sweep.min_time_s;
  for (const auto& [section, body] : sweep.sections.items()) trial.config[section] = body;
  trial.key = stable_hash(trial.config.dump());
  trial.name = trial.backend;
  for (const auto& axis : sweep.grid)
    if (axis.name != "backend") trial.name += name_part(axis, grid_point[axis.name]);
  for (std::size_t a = 0; a < axes.size(); ++a) trial.name += name_part(axes[a], axes[a].values[chosen[a]]);
  return trial;
}

// [sweep] sample = N: N trials of the grid drawn uniformly without replacement, seeded by
// [sweep] seed, kept in grid order. Their keys are the grid's, so a rerun resumes them.
std::vector<TrialSpec> sampled(const SweepSpec& sweep, std::vector<TrialSpec> trials) {
  if (sweep.sample <= 0) return trials;
  const auto n = static_cast<std::size_t>(sweep.sample);
  if (n > trials.size()) {
    const auto it = sweep.head_where.find("sample");
    throw ConfigError((it != sweep.head_where.end() ? it->second : sweep.path + ":1:1") + ": [sweep] sample = " +
                      std::to_string(n) + " is more than the grid's " + std::to_string(trials.size()) + " trials");
  }
  auto order = seeded_permutation(trials.size(), sweep.seed ^ 0x73616d706c65ull);  // "sample"
  order.resize(n);
  std::sort(order.begin(), order.end());
  std::vector<TrialSpec> chosen;
  for (auto i : order) chosen.push_back(std::move(trials[i]));
  return chosen;
}

}  // namespace

std::vector<TrialSpec> expand_trials(const SweepSpec& sweep, const BackendCatalog& backends, double max_trials) {
  const double count = trial_count(sweep);
  if (count > max_trials)
    throw ConfigError(sweep.path + ":1:1: the sweep expands into " + std::to_string(static_cast<long long>(count)) +
                      " trials, more than the " + std::to_string(static_cast<long long>(max_trials)) + " allowed");
  std::vector<TrialSpec> trials;
  if (count == 0) return sampled(sweep, std::move(trials));
  // An odometer over the grid axes, then, per grid point, over its backend's own axes.
  std::vector<std::size_t> point_at(sweep.grid.size(), 0);
  json point = json::object();
  do {
    for (std::size_t i = 0; i < sweep.grid.size(); ++i) point[sweep.grid[i].name] = sweep.grid[i].values[point_at[i]];
    std::vector<Axis> axes;
    if (auto it = sweep.backend_axes.find(point["backend"].get<std::string>()); it != sweep.backend_axes.end())
      axes = it->second;
    std::vector<std::size_t> chosen(axes.size(), 0);
    do trials.push_back(make_trial(sweep, backends, point, axes, chosen));
    while (next_combination(chosen, axes));
  } while (next_combination(point_at, sweep.grid));
  return sampled(sweep, std::move(trials));
}

std::vector<std::size_t> seeded_permutation(std::size_t n, std::uint64_t seed) {
  std::vector<std::size_t> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = i;
  std::mt19937_64 rng(seed);
  for (std::size_t i = n; i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
  return order;
}

}  // namespace attnlab
