#pragma once
// A trial kind is a vertical: one folder, trials/<kind>/, owns everything about it.
//
//   schema.cpp   its sweep keys (KindSchema, trials/schemas.hpp)              no LibTorch
//   tables.cpp   what the database shows of it (KindTables, trials/tables.hpp): the columns it
//                adds to trial_summary, its own views, the table `attnlab trials` and the end
//                of `attnlab run` print, and its closing findings               no LibTorch
//   run.cpp ...  running one trial (TrialKind::run)
//   report.cpp   its section of `attnlab report` and its `attnlab compare` table
//
// The two halves exist because bin/attnlab answers `attnlab trials` and `attnlab metrics`
// without loading LibTorch: it links the store and every kind's tables (the library
// attnlab_store), never a kind's running half. The store itself, a lower layer, makes only its
// tables; trials::define_views (tables.hpp) makes the kinds' views whenever a database is
// opened for writing.
//
// A new kind touches its folder, one line in trials/kinds.def (the one list that the three
// registries -- schemas, tables, kinds -- are made from), and the declarations of its keys and
// metrics (a key table like runtime/bench_spec.hpp, lines in base/metrics.cpp); then
// docs/CONFIG.md and docs/RESULTS.md are regenerated (`attnlab keys --markdown`, `attnlab
// metrics --markdown`). The build finds the folder's files by itself. Nothing outside a kind's
// folder tests its name. A kind that kinds.def does not list (a test's, an out-of-tree one) is
// added at run time with register_trial_kind.
#include "base/sink.hpp"
#include "report/page.hpp"
#include "runtime/config.hpp"
#include "trials/tables.hpp"

#include <attnlab/registry.hpp>

#include <string>
#include <vector>

namespace attnlab::trials {

// What a running trial may use.
struct TrialEnv {
  const SweepSpec& sweep;
  const TrialSpec& trial;
  const PluginRegistry& registry;
  std::string results_dir = "results";  // teachers, caches
  double sgemm_gflops = 0.0;            // this run's ceiling (0 when the kind does not time)
  int round = 1;                        // [sweep] rounds: this execution's round
  std::vector<double> prior_repeats_ms;  // the earlier rounds' timed repeats, to pool with this one's
};

class TrialKind {
 public:
  virtual ~TrialKind() = default;
  // Its name, views, summary and findings (the half without LibTorch).
  virtual const KindTables& tables() const = 0;
  virtual KindSchema schema() const = 0;
  // A kind that measures time: its run measures the sgemm ceiling first, and its trials must
  // not share cores with each other.
  virtual bool measures_time() const = 0;
  // Runs one trial; everything it measures goes to `sink`. Throws on failure.
  virtual void run(const TrialEnv& env, TrialSink& sink) const = 0;
  // Its section of the report page: what comes between the run context and the failed trials.
  virtual void report(report::Page& page) const = 0;
  // The `attnlab compare` table: every trial of the sweep with its ratios to its baseline trial.
  virtual ResultStore::Table compare(const report::SweepData& sweep, const report::BaselineSpec& baseline) const = 0;
};

// The kind of that name; throws std::invalid_argument listing the known ones.
const TrialKind& trial_kind(const std::string& name);
std::vector<std::string> trial_kind_names();
// Adds a kind that kinds.def does not list, and its tables; `kind` must outlive every use.
void register_trial_kind(const TrialKind& kind);

}  // namespace attnlab::trials
