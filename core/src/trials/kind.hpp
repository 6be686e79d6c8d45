#pragma once
// Trial kinds behind one interface, registered by name: "bench" (bench_kind.cpp) and
// "distill" (distill_kind.cpp). A new kind implements TrialKind, declares its keys in a
// KindSchema (schemas.hpp) and is added to the list in kind.cpp; the loader, the runner and
// docs/CONFIG.md then know it.
#include "base/sink.hpp"
#include "runtime/config.hpp"

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
  virtual KindSchema schema() const = 0;
  // A kind that measures time: its run measures the sgemm ceiling first, and its trials must
  // not share cores with each other.
  virtual bool measures_time() const = 0;
  // Runs one trial; everything it measures goes to `sink`. Throws on failure.
  virtual void run(const TrialEnv& env, TrialSink& sink) const = 0;
};

// The kind of that name; throws std::invalid_argument listing the known ones.
const TrialKind& trial_kind(const std::string& name);
std::vector<std::string> trial_kind_names();

}  // namespace attnlab::trials
