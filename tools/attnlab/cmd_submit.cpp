// attnlab submit SWEEP.toml [--tasks N] [--partition P] [--time HH:MM:SS] [--cpus-per-task C]
//                [--gpus G] [--mem M] [--db PATH] [--set section.key=value ...] [--dry-run]
// The sweep as a Slurm job array (engine/slurm.hpp): validated first like `attnlab run`,
// then only the tasks with trials left are submitted. The [slurm] table sets the same
// options; the command line wins.
#include "commands.hpp"
#include "sweep_input.hpp"

#include "engine/slurm.hpp"
#include "trials/schemas.hpp"

#include <attnlab/registry.hpp>

#include <spdlog/spdlog.h>

#include <iostream>
#include <memory>
#include <optional>

namespace attnlab::cli {
namespace {

struct SubmitArgs {
  std::string sweep_path, db = default_db_path(), results_dir = "results";
  std::vector<std::string> overrides;
  std::optional<std::int64_t> tasks, cpus_per_task, gpus;
  std::optional<std::string> partition, time, mem;
  bool dry_run = false;
};

void setup(CLI::App& root, int& exit_code) {
  auto args = std::make_shared<SubmitArgs>();
  auto* cmd = root.add_subcommand("submit", command_description("submit"));
  cmd->add_option("sweep", args->sweep_path, "sweep file")->required();
  cmd->add_option("--db", args->db, "the database the shards are merged into (attnlab merge)")->capture_default_str();
  cmd->add_option("--results-dir", args->results_dir, "folder for teachers and caches")->capture_default_str();
  cmd->add_option("--set", args->overrides, "override a sweep value: section.key=value (TOML value)");
  cmd->add_option("--tasks", args->tasks, "array tasks ([slurm] tasks)")->check(CLI::Range(1, 100000));
  cmd->add_option("--partition", args->partition, "partition ([slurm] partition)");
  cmd->add_option("--time", args->time, "time limit per task ([slurm] time)");
  cmd->add_option("--cpus-per-task", args->cpus_per_task, "CPUs per task ([slurm] cpus_per_task)")->check(CLI::Range(0, 4096));
  cmd->add_option("--gpus", args->gpus, "GPUs per task ([slurm] gpus)")->check(CLI::Range(0, 64));
  cmd->add_option("--mem", args->mem, "memory per task ([slurm] mem)");
  cmd->add_flag("--dry-run", args->dry_run, "write the script and print the sbatch command, submit nothing");
  cmd->callback([args, &exit_code] {
    PluginRegistry registry;
    registry.discover();
    SweepSpec sweep;
    std::vector<TrialSpec> specs;
    if (!read_sweep_file(args->sweep_path, registry, args->overrides, sweep, specs, exit_code)) return;
    engine::SubmitOptions options;
    options.slurm = sweep.slurm;
    if (args->tasks) options.slurm.tasks = *args->tasks;
    if (args->cpus_per_task) options.slurm.cpus_per_task = *args->cpus_per_task;
    if (args->gpus) options.slurm.gpus = *args->gpus;
    if (args->partition) options.slurm.partition = *args->partition;
    if (args->time) options.slurm.time = *args->time;
    if (args->mem) options.slurm.mem = *args->mem;
    options.db_path = args->db;
    options.results_dir = args->results_dir;
    options.dry_run = args->dry_run;
    report_errors("submit", exit_code, [&] {
      const auto s = engine::submit(sweep, specs, options);
      std::cout << "script: " << s.script << "\n";
      if (s.tasks.empty()) {
        std::cout << "nothing to submit: every trial of '" << sweep.name << "' is done in " << args->db
                  << " or in its shard; fold the shards in with\n  attnlab merge --db " << args->db << " "
                  << s.folder << "/shard-*.sqlite\n";
        return;
      }
      std::cout << s.trials_left << " trials left in " << s.tasks.size() << " of " << options.slurm.tasks
                << " tasks\n";
      if (args->dry_run) {
        std::cout << "would run: " << s.sbatch_command << "\n";
        return;
      }
      std::cout << "submitted job " << s.job_id << ": " << s.sbatch_command << "\n"
                << "watch it with `attnlab status --sweep " << sweep.name << " --db " << args->db
                << "`; when it is done: attnlab merge --db " << args->db << " " << s.folder << "/shard-*.sqlite\n";
    });
  });
}

}  // namespace

ATTNLAB_COMMAND(setup);

}  // namespace attnlab::cli
