// attnlab run SWEEP.toml [--db PATH] [--force] [--rerun-stale] [--jobs N] [--set section.key=value ...]
//                         [--shard I --shards N] [--lease-s S]
// Validates the whole sweep before touching the database, runs what is not done yet (each
// trial in its own process, claimed so that cooperating workers never run one twice), and
// prints the sweep's summary table and what its kind found (trials/<kind>/tables.cpp).
//
// attnlab _trial JOB.json RESULT.json   (hidden) one trial, in the child process a worker starts
#include "commands.hpp"
#include "sweep_input.hpp"
#include "table.hpp"

#include "runtime/config.hpp"
#include "engine/runner.hpp"
#include "engine/trial_job.hpp"
#include "trials/schemas.hpp"
#include "trials/tables.hpp"

#include <attnlab/registry.hpp>

#include <spdlog/spdlog.h>

#include <iostream>
#include <memory>

namespace attnlab::cli {

namespace {

struct RunArgs {
  std::string sweep_path, db = default_db_path(), results_dir = "results";
  bool force = false, rerun_stale = false, dry_run = false, no_progress = false, no_ceiling = false;
  int jobs = 1, shard = -1, shards = 0;
  std::string skip_done_in;
  double lease_s = 60;
  std::vector<std::string> overrides;
};

void setup(CLI::App& root, int& exit_code) {
  auto args = std::make_shared<RunArgs>();
  auto* cmd = root.add_subcommand("run", command_description("run"));
  cmd->add_option("sweep", args->sweep_path, "sweep file (experiments/*.toml)")->required();
  cmd->add_option("--db", args->db, "results database")->capture_default_str();
  cmd->add_option("--results-dir", args->results_dir, "folder for teachers and caches")->capture_default_str();
  cmd->add_option("--set", args->overrides, "override a sweep value: section.key=value (TOML value)");
  cmd->add_flag("--force", args->force, "rerun trials that are already done");
  cmd->add_flag("--rerun-stale", args->rerun_stale, "rerun trials done by another build of their plugin");
  auto* jobs = cmd->add_option("--jobs,-j", args->jobs, "workers in this process (bench sweeps: 1 unless given)")
                   ->check(CLI::Range(1, 256));
  cmd->add_option("--shard", args->shard, "run only trials with ordinal % shards == shard (needs --shards)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--shards", args->shards, "how many shards the sweep is split into")->check(CLI::PositiveNumber);
  cmd->add_option("--skip-done-in", args->skip_done_in, "leave out trials done in this database (a shard's merge target)");
  cmd->add_option("--lease-s", args->lease_s, "a claim expires this long after its last heartbeat")
      ->capture_default_str()->check(CLI::Range(0.5, 86400.0));
  cmd->add_flag("--dry-run", args->dry_run, "validate and list the trials, run nothing");
  cmd->add_flag("--no-progress", args->no_progress, "no live progress line");
  cmd->add_flag("--no-ceiling", args->no_ceiling, "bench: skip the sgemm ceiling (no fraction_of_sgemm recorded)");
  cmd->callback([args, jobs, &exit_code] {
    if ((args->shard >= 0) != (args->shards > 0) || (args->shards > 0 && args->shard >= args->shards)) {
      std::cerr << "attnlab run: --shard I and --shards N go together, with 0 <= I < N\n";
      exit_code = 2;
      return;
    }
    PluginRegistry registry;
    registry.discover();
    for (const auto& problem : registry.problems()) spdlog::warn("{}", problem);
    SweepSpec sweep;
    std::vector<TrialSpec> specs;
    if (!read_sweep_file(args->sweep_path, registry, args->overrides, sweep, specs, exit_code)) return;
    if (args->dry_run) {
      for (const auto& t : specs) std::cout << t.key << "  " << t.name << "\n";
      std::cout << specs.size() << " trials\n";
      return;
    }
    RunOptions options;
    options.db_path = args->db;
    options.results_dir = args->results_dir;
    options.force = args->force;
    options.rerun_stale = args->rerun_stale;
    options.measure_ceiling = !args->no_ceiling;
    options.skip_done_in = args->skip_done_in;
    options.jobs = args->jobs;
    options.jobs_explicit = jobs->count() > 0;
    options.lease_s = args->lease_s;
    if (args->shards > 0) {
      options.shard = args->shard;
      options.shards = args->shards;
    }
    options.progress = !args->no_progress;
    options.command = "attnlab run " + args->sweep_path;
    for (const auto& o : args->overrides) options.command += " --set " + o;
    const RunSummary summary = run_sweep(sweep, specs, registry, options);
    // "already done" counts trials pruned earlier too: a plain run leaves both alone.
    spdlog::info("{} trials: {} ran, {} already done, {} failed{}", summary.total, summary.ran, summary.skipped,
                 summary.failed, summary.pruned ? ", " + std::to_string(summary.pruned) + " pruned" : std::string());
    ResultStore store(args->db, /*read_only=*/true);
    const trials::KindTables& kind = trials::kind_tables(sweep.kind);
    print_table(std::cout, store.query(kind.summary_sql(), {sweep.name}));
    if (const std::string found = kind.findings(store, sweep.name); !found.empty()) std::cout << "\n" << found;
    if (summary.failed > 0 || summary.interrupted) exit_code = 1;
  });

  auto trial_args = std::make_shared<std::pair<std::string, std::string>>();
  auto* trial = root.add_subcommand("_trial", command_description("_trial"));
  trial->group("");  // hidden from --help
  trial->add_option("job", trial_args->first)->required();
  trial->add_option("result", trial_args->second)->required();
  trial->callback([trial_args, &exit_code] { exit_code = engine::run_trial_job(trial_args->first, trial_args->second); });
}

}  // namespace

ATTNLAB_COMMAND(setup);

}  // namespace attnlab::cli
