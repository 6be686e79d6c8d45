#pragma once
// Runs a validated sweep: records the run context, every trial's status and numbers.
// Trials already done (same key) are skipped unless `force`; a failed trial is recorded
// with its error and the sweep goes on.
#include "runtime/config.hpp"
#include "runtime/store.hpp"

#include <attnlab/registry.hpp>

#include <string>

namespace attnlab {

struct RunOptions {
  std::string db_path = "results/attnlab.sqlite";
  std::string results_dir = "results";  // teachers, caches
  bool force = false;
  bool progress = true;                 // live line on a terminal, plain lines otherwise
  std::string command;                  // the command line, stored with the run
};

struct RunSummary {
  int total = 0, ran = 0, skipped = 0, failed = 0;
};

RunSummary run_sweep(const SweepSpec& sweep, const std::vector<TrialSpec>& trials, const PluginRegistry& registry,
                     const RunOptions& options);

}  // namespace attnlab
