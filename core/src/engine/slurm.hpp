#pragma once
// Sweeps on a Slurm cluster: one job array, each task a worker over its own shard.
//
//   attnlab submit SWEEP.toml --tasks N ...   writes <db>.slurm/<sweep>/ (the sweep's text as
//                                             submitted, job.sbatch, logs/) and runs sbatch
//   task i (SLURM_ARRAY_TASK_ID)              attnlab run --shard i --shards N into
//                                             <db>.slurm/<sweep>/shard-i-of-N.sqlite
//   attnlab merge --db DB SHARD...            folds the shards into DB (runtime/merge.hpp)
//
// The shard count is always passed explicitly: a resubmission of some tasks only
// (--array=1,3) changes SLURM_ARRAY_TASK_COUNT, and a scheme deriving N from it silently
// skips work. A task that Slurm requeues resumes its shard. Submitting again sends only the
// tasks that still have trials done neither in DB nor in their shard. The truth about a
// trial is in these databases, never in sacct (which needs slurmdbd).
#include "engine/shard_paths.hpp"
#include "runtime/config.hpp"

#include <string>
#include <vector>

namespace attnlab::engine {

struct SubmitOptions {
  SlurmSpec slurm;                 // [slurm] with the command line's overrides applied
  std::string db_path = "results/attnlab.sqlite";  // where `attnlab merge` puts it all
  std::string results_dir = "results";
  bool dry_run = false;            // write the script and say what would be submitted
};

struct Submission {
  std::string folder, script;
  std::vector<int> tasks;          // the array indices submitted (those with trials left)
  int trials_left = 0;
  std::string job_id;              // from sbatch --parsable ("" on a dry run or when nothing is left)
  std::string sbatch_command;      // as run
};

Submission submit(const SweepSpec& sweep, const std::vector<TrialSpec>& trials, const SubmitOptions& options);

}  // namespace attnlab::engine
