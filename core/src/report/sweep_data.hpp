#pragma once
// One sweep read out of the results database into plain structs, with the axis bookkeeping
// reports and comparisons share: which parameters vary, which trials sit at the same point of
// the grid apart from their backend, and a readable label per backend variant.
#include "runtime/store.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace attnlab::report {

struct TrialData {
  std::int64_t id = 0;
  std::optional<std::int64_t> run_id;
  std::string name, backend, status, error;
  std::string sweep;  // the sweep's name (as stored, without the prefix a multi-sweep read gives `name`)
  std::map<std::string, std::string> params;  // grid axes by name, backend parameters as backend.<name>
  std::map<std::string, double> finals;       // metrics at step -1

  std::optional<double> final_metric(const std::string& metric) const;
  std::string param(const std::string& key) const;  // "" when absent
};

struct SweepData {
  std::string name, kind;         // name: "a,b" when several sweeps are read as one
  std::vector<std::string> names;  // the sweeps read, in the order given
  std::vector<TrialData> trials;  // in trial id order (the order the runner created them), sweep by sweep

  // Parameter names whose value differs between trials (backend included).
  std::vector<std::string> varying_params() const;
  // Backend parameters (backend.<name>) that differ between trials of `backend`.
  std::vector<std::string> varying_backend_params(const std::string& backend) const;
  // "masks" or "masks/execution=block_sparse": the backend plus its varying parameters.
  std::string variant_label(const TrialData& trial) const;
};

// Loads the sweep, or several ("a,b,c": one kind; each trial's name is then prefixed with
// "<sweep>: "); throws std::runtime_error naming the known sweeps when one does not exist.
SweepData load_sweep_data(ResultStore& store, const std::string& sweeps);

// True for parameters that describe the backend (the `backend` axis and backend.<name>).
bool is_backend_param(const std::string& name);

// The trial's position on the grid apart from its backend: every non-backend parameter,
// "name=value" joined by ";". Trials with equal keys are comparable.
std::string axes_key(const TrialData& trial);

// A per-step metric of one trial: (step, value) in step order.
std::vector<std::pair<std::int64_t, double>> load_curve(ResultStore& store, std::int64_t trial_id,
                                                       const std::string& metric);
// Names of every per-step metric of a trial starting with `prefix`, sorted.
std::vector<std::string> curve_names(ResultStore& store, std::int64_t trial_id, const std::string& prefix);

}  // namespace attnlab::report
