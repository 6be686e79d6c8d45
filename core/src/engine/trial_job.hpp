#pragma once
// One trial in its own process. The worker writes a job file, runs
//
//   attnlab _trial JOB.json RESULT.json   (or its fork server forks a child that calls
//                                         run_trial_job alike, without exec: fork_server.hpp)
// and reads RESULT.json back when the child exits 0: the record (metrics, samples, info) and
// the provenance of the plugin build the child really loaded. On an exception the child
// writes {"error": ...} and exits kExitTrialError; a crash writes nothing, and the worker
// records the signal or exit code with the tail of the child's output. A trial that stops
// itself (TrialStopped: it diverged, or the pruner stopped it) writes {"error", "status",
// "record"}: the status to record, why, and its curves so far.
#include "runtime/store.hpp"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace attnlab::engine {

inline constexpr int kExitTrialError = 3;  // the trial threw: RESULT.json says why

struct TrialJob {
  std::string sweep_path, sweep_source;  // the sweep as loaded by the worker (its text, not the file now)
  std::vector<std::string> overrides;
  std::string trial_key;
  std::string results_dir = "results";
  double sgemm_gflops = 0.0;
  std::string label;  // "[3/12] dense/seq_len:1024" for progress lines
  bool live = false;  // draw a live progress line (the worker forwards it to a terminal)
  std::string db_path;  // the database the worker writes (the pruner reads finished trials there)
  int round = 1;        // [sweep] rounds: which round this execution is
  std::vector<double> prior_repeats_ms;  // the earlier rounds' timed repeats, pooled with this one's

  nlohmann::json to_json() const;
  static TrialJob from_json(const nlohmann::json& j);
};

struct TrialOutcome {
  bool ok = false;
  TrialRecord record;
  Provenance provenance;
  std::string error;  // when !ok
  // When the trial stopped itself: "failed" (diverged) or "pruned"; final, never retried.
  // `record` then holds what it logged before stopping.
  std::string final_status;
};

// Child side: loads the sweep from the job, runs the trial of that key, writes the result
// file (atomically: a half-written file is never read). Returns the process exit code.
// `spawn` says how its process was started ("exec", or "fork-server": engine/fork_server.hpp);
// it is recorded as the trial's info `engine.spawn`.
int run_trial_job(const std::string& job_path, const std::string& result_path, const std::string& spawn = "exec");

// Worker side: what the child left in `result_path` (ok = false with a reason when it left
// nothing readable).
TrialOutcome read_trial_result(const std::string& result_path);

}  // namespace attnlab::engine
