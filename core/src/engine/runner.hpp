#pragma once
// Runs a validated sweep with cooperating workers.
//
// `attnlab run` is one worker process, `--jobs N` N workers in it, and any number of such
// processes on one host may share a database: each worker claims a trial in one transaction
// (store.claim), runs it in a child process (engine/process.hpp), heartbeats the claim while
// it runs and writes the result in one transaction only while it still holds the claim. A
// trial is never run twice at the same time; one whose worker died is claimed again when its
// lease expires (at once, when the dead worker was on this host), up to max_attempts.
//
// Trials already done are skipped; done by another build of their plugin, they are *stale*:
// reported, and rerun only with rerun_stale. `force` reruns everything. A sweep can also be
// split into shards (shard / shards: trials whose ordinal % shards == shard), each written to
// its own database by one process, e.g. a Slurm array task (attnlab submit, attnlab merge):
// there, running trials of any other process are taken over at once (a requeued task finds
// its predecessor's claims, whatever host that ran on).
#include "runtime/config.hpp"
#include "runtime/store.hpp"

#include <attnlab/registry.hpp>

#include <string>
#include <vector>

namespace attnlab {

struct RunOptions {
  std::string db_path = "results/attnlab.sqlite";
  std::string results_dir = "results";  // teachers, caches
  bool force = false;                   // rerun trials that are done
  bool rerun_stale = false;             // rerun trials done by another build of their plugin
  bool progress = true;                 // live line on a terminal, plain lines otherwise
  int jobs = 1;                         // workers in this process
  bool jobs_explicit = false;           // given on the command line: overrides one-at-a-time timing
  double lease_s = 60;                  // claims expire this long after their last heartbeat
  int shard = 0, shards = 1;            // run only trials with ordinal % shards == shard
  bool measure_ceiling = true;          // timing kinds: measure the sgemm ceiling first
  std::string skip_done_in;             // a database whose done trials this run leaves out (a shard's merge target)
  std::string command;                  // the command line, stored with the run
};

struct RunSummary {
  int total = 0, ran = 0, skipped = 0, failed = 0, stale = 0, pruned = 0;
  int skipped_elsewhere = 0;  // done in skip_done_in
  bool interrupted = false;  // SIGINT / SIGTERM: running trials were released for others
};

RunSummary run_sweep(const SweepSpec& sweep, const std::vector<TrialSpec>& trials, const PluginRegistry& registry,
                     const RunOptions& options);

}  // namespace attnlab
