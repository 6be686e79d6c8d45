// attnlab submit (slurm.hpp): the sbatch script, which tasks still have work, sbatch itself.
#include "engine/slurm.hpp"

#include "engine/process.hpp"
#include "runtime/store.hpp"

#include <array>
#include <cctype>
#include <map>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

namespace attnlab::engine {
namespace {

namespace fs = std::filesystem;

std::string quote(const std::string& text) {  // for a POSIX shell
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Keys of the trials done in the database at `path` (none when it does not exist yet).
std::set<std::string> done_keys(const std::string& path) {
  std::set<std::string> keys;
  if (!fs::exists(path)) return keys;
  ResultStore store(path, /*read_only=*/true);
  for (const auto& row : store.query("SELECT key FROM trials WHERE status = 'done'").rows)
    if (row[0]) keys.insert(*row[0]);
  return keys;
}

// "0-3" or "1,3,5-7".
std::string array_spec(const std::vector<int>& tasks) {
  std::string out;
  for (std::size_t i = 0; i < tasks.size();) {
    std::size_t j = i;
    while (j + 1 < tasks.size() && tasks[j + 1] == tasks[j] + 1) ++j;
    out += (out.empty() ? "" : ",") + std::to_string(tasks[i]) + (j > i ? "-" + std::to_string(tasks[j]) : "");
    i = j + 1;
  }
  return out;
}

std::string run_capture(const std::string& command, int& status) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) throw std::runtime_error("cannot run: " + command);
  std::array<char, 512> buffer{};
  while (fgets(buffer.data(), buffer.size(), pipe)) out += buffer.data();
  status = pclose(pipe);
  return out;
}

}  // namespace

Submission submit(const SweepSpec& sweep, const std::vector<TrialSpec>& trials, const SubmitOptions& options) {
  const SlurmSpec& s = options.slurm;
  const int n = static_cast<int>(s.tasks);
  Submission out;
  out.folder = shard_folder(options.db_path, sweep.name);
  fs::create_directories(fs::path(out.folder) / "logs");

  // The tasks with something left: a trial is done when DB or its own shard says so.
  const auto merged = done_keys(options.db_path);
  std::set<int> tasks;
  std::map<int, std::set<std::string>> shard_done;
  for (std::size_t i = 0; i < trials.size(); ++i) {
    const int task = static_cast<int>(i % static_cast<std::size_t>(n));
    if (merged.count(trials[i].key)) continue;
    if (!shard_done.count(task)) shard_done[task] = done_keys(shard_path(options.db_path, sweep.name, task, n));
    if (shard_done[task].count(trials[i].key)) continue;
    ++out.trials_left;
    tasks.insert(task);
  }
  out.tasks.assign(tasks.begin(), tasks.end());

  // The sweep's text as submitted: later edits of the original do not reach running tasks.
  const std::string sweep_copy = (fs::path(out.folder) / "sweep.toml").string();
  std::ofstream(sweep_copy, std::ios::binary) << sweep.source;
  std::ostringstream script;
  script << "#!/bin/bash\n"
         << "# Written by attnlab submit: sweep '" << sweep.name << "', " << n << " array tasks. Task i runs the\n"
         << "# trials with ordinal % " << n << " == i into shard-i-of-" << n << ".sqlite here; a requeued task resumes\n"
         << "# its shard. `attnlab submit` again sends only tasks with trials left; `attnlab merge` folds the shards.\n"
         << "#SBATCH --job-name=attnlab-" << safe_name(sweep.name) << "\n"
         << "#SBATCH --output=" << out.folder << "/logs/%A_%a.out\n"
         << "#SBATCH --requeue\n";
  if (!s.partition.empty()) script << "#SBATCH --partition=" << s.partition << "\n";
  if (!s.time.empty()) script << "#SBATCH --time=" << s.time << "\n";
  if (s.cpus_per_task > 0) script << "#SBATCH --cpus-per-task=" << s.cpus_per_task << "\n";
  if (s.gpus > 0) script << "#SBATCH --gpus=" << s.gpus << "\n";
  if (!s.mem.empty()) script << "#SBATCH --mem=" << s.mem << "\n";
  script << "set -euo pipefail\n"
         << "cd " << quote(fs::current_path().string()) << "\n"
         << "exec " << quote(self_executable()) << " run " << quote(sweep_copy) << " \\\n"
         << "  --db " << quote(out.folder) << "/shard-${SLURM_ARRAY_TASK_ID}-of-" << n << ".sqlite \\\n"
         << "  --shard \"${SLURM_ARRAY_TASK_ID}\" --shards " << n << " \\\n"
         << "  --skip-done-in " << quote(fs::absolute(options.db_path).string()) << " \\\n"
         << "  --results-dir " << quote(fs::absolute(options.results_dir).string()) << " --no-progress";
  for (const auto& o : sweep.overrides) script << " \\\n  --set " << quote(o);
  script << "\n";
  out.script = (fs::path(out.folder) / "job.sbatch").string();
  std::ofstream(out.script) << script.str();
  fs::permissions(out.script, fs::perms::owner_exec, fs::perm_options::add);

  if (out.tasks.empty()) return out;
  out.sbatch_command = "sbatch --parsable --array=" + array_spec(out.tasks) + " " + quote(out.script);
  if (options.dry_run) return out;
  int status = 0;
  const std::string reply = run_capture(out.sbatch_command + " 2>&1", status);
  if (status != 0) throw std::runtime_error("sbatch failed: " + reply);
  out.job_id = reply.substr(0, reply.find_first_of(";\n"));
  return out;
}

}  // namespace attnlab::engine
