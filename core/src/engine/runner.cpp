// Cooperating workers over one results database (runner.hpp).
#include "engine/runner.hpp"

#include "engine/filesystem.hpp"
#include "engine/fork_server.hpp"
#include "engine/process.hpp"
#include "engine/trial_job.hpp"
#include "runtime/context.hpp"
#include "trials/kind.hpp"

#include <spdlog/spdlog.h>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <mutex>
#include <thread>

namespace attnlab {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// SIGINT / SIGTERM (Slurm's scancel and time limit send SIGTERM, then SIGKILL after
// KillWait): stop claiming, stop the running children and give their claims back.
std::atomic<bool> stop_requested{false};
extern "C" void request_stop(int) { stop_requested = true; }

struct StopOnSignals {
  struct sigaction old_int {}, old_term {};
  StopOnSignals() {
    struct sigaction action {};
    action.sa_handler = request_stop;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &old_int);
    sigaction(SIGTERM, &action, &old_term);
  }
  ~StopOnSignals() {
    sigaction(SIGINT, &old_int, nullptr);
    sigaction(SIGTERM, &old_term, nullptr);
  }
};

std::string tail_lines(const std::string& text, std::size_t max_lines) {
  std::size_t at = text.size();
  for (std::size_t n = 0; at > 0 && n <= max_lines; --at)
    if (text[at - 1] == '\n' && ++n > max_lines) break;
  std::string out = text.substr(at);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

struct Shared {
  const SweepSpec& sweep;
  const RunOptions& options;
  const std::vector<std::int64_t>& wanted;
  const std::map<std::int64_t, int>& position;  // trial id -> its 1-based place in the sweep
  const ClaimPolicy policy;
  const std::function<bool(const std::string&)> owner_alive;
  const std::int64_t run_id;
  const double sgemm;
  const bool live;
  const int total;
  int round = 1;                                         // [sweep] rounds: the one running
  std::map<std::int64_t, std::vector<double>> prior{};  // trial id -> earlier rounds' repeats
  std::atomic<int> ran{0}, failed{0}, pruned{0};
  std::mutex log{};
};

// One trial's process: from the worker's fork server when it has one (LibTorch already
// loaded: milliseconds), else exec'd (`attnlab _trial`, ~0.6 s of loading first).
engine::ChildResult run_trial_process(engine::ForkServer* server, const std::string& job_path,
                                      const std::string& result_path, const engine::ChildOptions& options,
                                      const std::function<bool()>& heartbeat) {
  if (server && server->alive()) {
    try {
      engine::ChildResult result = server->run_trial(job_path, result_path, options, heartbeat);
      if (!server->alive()) spdlog::warn("the fork server died; this worker's next trials are exec'd");
      return result;
    } catch (const std::runtime_error& e) {
      // Thrown only before the trial started: running it the old way loses nothing.
      spdlog::warn("fork server: {}; this trial is exec'd", e.what());
    }
  }
  return engine::run_child({engine::self_executable(), "_trial", job_path, result_path}, options, heartbeat);
}

// One fork server per worker, forked now, while this process has one thread and no thread
// pool (engine/fork_server.hpp). Null entries exec their trials.
std::vector<std::unique_ptr<engine::ForkServer>> start_fork_servers(int jobs) {
  std::vector<std::unique_ptr<engine::ForkServer>> servers(static_cast<std::size_t>(jobs));
  if (!engine::fork_server_wanted()) {
    spdlog::info("ATTNLAB_FORK_SERVER=0: every trial is exec'd");
    return servers;
  }
  for (auto& server : servers) {
    std::string why_not;
    server = engine::ForkServer::start(why_not);
    if (!server) {
      spdlog::warn("no fork server ({}): trials are exec'd", why_not);
      break;
    }
  }
  spdlog::debug("trials are forked from {} fork server(s)", servers.front() ? jobs : 0);
  return servers;
}

// The job file the trial's child reads: which trial of which sweep, and where to record it.
void write_job(const Shared& shared, const Claim& claim, const std::string& label, const std::string& job_path) {
  engine::TrialJob job;
  job.sweep_path = shared.sweep.path;
  job.sweep_source = shared.sweep.source;
  job.overrides = shared.sweep.overrides;
  job.trial_key = claim.key;
  job.results_dir = shared.options.results_dir;
  job.sgemm_gflops = shared.sgemm;
  job.label = label + (claim.attempt > 1 ? " (attempt " + std::to_string(claim.attempt) + ")" : "");
  job.live = shared.live;
  job.db_path = shared.options.db_path;
  job.round = shared.round;
  if (auto it = shared.prior.find(claim.trial_id); it != shared.prior.end()) job.prior_repeats_ms = it->second;
  std::ofstream out(job_path);
  out << job.to_json().dump();
}

// Why a trial failed: its own message when it threw, else how the process ended and the end
// of what it printed.
std::string failure_reason(const engine::ChildResult& result, const engine::TrialOutcome& outcome) {
  std::string why = outcome.error.empty() || result.timed_out || result.claim_lost ? result.describe() : outcome.error;
  if (!(result.exited && result.exit_code == engine::kExitTrialError) || result.timed_out) {
    const std::string tail = tail_lines(result.stderr_tail, 8);
    if (!tail.empty()) why += "; last output:\n" + tail;
  }
  return why;
}

// What the child's end means for the claimed trial: done, stopped itself (diverged or pruned,
// never retried), or failed (retried while attempts are left).
void record_outcome(Shared& shared, ResultStore& store, const Claim& claim, const std::string& me,
                    const std::string& label, const engine::ChildResult& result, const std::string& result_path) {
  const auto outcome = result.exited && result.exit_code == 0 ? engine::read_trial_result(result_path)
                       : result.exited && result.exit_code == engine::kExitTrialError
                           ? engine::read_trial_result(result_path)
                           : engine::TrialOutcome{};
  std::lock_guard<std::mutex> lock(shared.log);
  if (!outcome.final_status.empty()) {
    if (store.end_claimed(claim, me, outcome.final_status, outcome.error, outcome.record)) {
      ++(outcome.final_status == "pruned" ? shared.pruned : shared.failed);
      spdlog::warn("{} {}", label, outcome.error);
    }
    return;
  }
  if (outcome.ok) {
    if (store.finish_claimed(claim, me, outcome.record, outcome.provenance)) {
      ++shared.ran;
      spdlog::info("{} done ({:.1f} s)", label, result.seconds);
    } else {
      spdlog::warn("{}: finished, but its claim had been taken over; the result is not recorded", label);
    }
    return;
  }
  const std::string why = failure_reason(result, outcome);
  if (result.claim_lost) {
    spdlog::warn("{}: {}", label, why);
    return;
  }
  store.fail_claimed(claim, me, why, {}, shared.policy.max_attempts);
  const bool retrying = store.trial_status(claim.key) == std::optional<std::string>("pending");
  if (!retrying) ++shared.failed;
  spdlog::error("{} {}: {}", label, retrying ? "failed, will retry" : "failed", why);
}

// One worker: claim, run in a child, record; until nothing is left that anyone could claim.
void work(Shared& shared, int worker_index, engine::ForkServer* server) {
  const std::string me = engine::worker_id() + (worker_index ? "/" + std::to_string(worker_index) : "");
  ResultStore store(shared.options.db_path, false, !engine::network_filesystem_of(shared.options.db_path));
  store.want(shared.wanted);
  const fs::path scratch = fs::temp_directory_path() /
                           ("attnlab-" + std::to_string(::getpid()) + "-" + std::to_string(worker_index));
  fs::create_directories(scratch);

  while (!stop_requested) {
    auto claim = store.claim(shared.run_id, me, shared.policy, shared.owner_alive);
    if (!claim) {
      store.reap(shared.policy, shared.owner_alive);
      const auto left = store.wanted_status();
      if (left.at("pending") + left.at("running") == 0) break;
      // Others hold the rest: wait for them, and take over whatever they abandon.
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      continue;
    }
    const int place = shared.position.count(claim->trial_id) ? shared.position.at(claim->trial_id) : 0;
    const std::string label = "[" + std::to_string(place) + "/" + std::to_string(shared.total) + "] " + claim->name;
    const std::string job_path = (scratch / "job.json").string(), result_path = (scratch / "result.json").string();
    fs::remove(result_path);
    write_job(shared, *claim, label, job_path);
    engine::ChildOptions child;
    child.timeout_s = shared.sweep.trial_timeout_s;
    child.heartbeat_s = std::max(0.2, shared.policy.lease_s / 3);
    child.forward_stderr = shared.live;
    child.stop = &stop_requested;
    const auto result = run_trial_process(server, job_path, result_path, child, [&] {
      return store.heartbeat(*claim, me, shared.policy.lease_s);
    });
    if (result.stopped) {
      store.release(*claim, me);
      break;
    }
    record_outcome(shared, store, *claim, me, label, result, result_path);
  }
  fs::remove_all(scratch);
}

// A shard has one writing process: a claim of any other is a leftover (a requeued task's
// predecessor), not a live worker.
bool own_process(const std::string& owner) { return owner.rfind(engine::worker_id(), 0) == 0; }

// This worker's trials (the shard's; all of them when unsharded), registered in the database;
// those to rerun (--force, failed, --rerun-stale) go back to pending.
struct Registered {
  std::vector<std::int64_t> wanted;
  std::map<std::int64_t, int> position;  // trial id -> its 1-based place in the sweep
};
Registered register_trials(ResultStore& store, const SweepSpec& sweep, const std::vector<TrialSpec>& trials,
                           const PluginRegistry& registry, const RunOptions& options, RunSummary& summary) {
  Registered out;
  const std::int64_t sweep_id = store.upsert_sweep(sweep.name, sweep.kind, sweep.path, sweep.source);
  std::map<std::string, int> stale_by_backend;
  std::set<std::string> done_elsewhere;
  if (!options.skip_done_in.empty() && fs::exists(options.skip_done_in)) {
    ResultStore merged(options.skip_done_in, /*read_only=*/true);
    for (const auto& row : merged.query("SELECT key FROM trials WHERE status = 'done'").rows)
      if (row[0]) done_elsewhere.insert(*row[0]);
  }
  for (size_t i = 0; i < trials.size(); ++i) {
    if (static_cast<int>(i % static_cast<size_t>(std::max(1, options.shards))) != options.shard) continue;
    const auto& t = trials[i];
    ++summary.total;
    if (done_elsewhere.count(t.key)) {
      ++summary.skipped_elsewhere;
      continue;
    }
    auto [id, status] = store.ensure_trial(sweep_id, t.key, t.name, t.backend, static_cast<int>(i), t.config);
    out.wanted.push_back(id);
    out.position[id] = static_cast<int>(i) + 1;
    bool rerun = options.force || status == "failed";  // a pruned trial stays pruned unless forced
    if (status == "done" && !options.force) {
      const Provenance made_by = store.provenance(id);
      const LoadedPlugin& plugin = registry.get(t.backend);
      if (made_by.plugin_build != plugin.build_id) {
        ++summary.stale;
        if (options.rerun_stale) rerun = true;
        else ++stale_by_backend[t.backend];
      }
    }
    if (rerun && status != "running") store.reset_trial(id);
  }
  for (const auto& [backend, n] : stale_by_backend)
    spdlog::warn("{} trial(s) of '{}' are done with another build of the plugin (now {} {}): kept, not rerun; "
                 "--rerun-stale reruns them",
                 n, backend, registry.get(backend).version, registry.get(backend).build_id);
  return out;
}

// How many rounds a done trial has pooled (time/rounds; 1 when absent); a large number for a
// trial that is not done (nothing to reopen).
int rounds_pooled(ResultStore& store, std::int64_t id) {
  const auto rows = store.query(R"SQL(SELECT t.status,
      (SELECT value FROM metrics WHERE trial_id = t.id AND name = 'time/rounds' AND step = -1) FROM trials t
    WHERE t.id = CAST(?1 AS INTEGER))SQL",
                                {std::to_string(id)}).rows;
  if (rows.empty() || !rows[0][0] || *rows[0][0] != "done") return std::numeric_limits<int>::max();
  return rows[0][1] ? static_cast<int>(std::stod(*rows[0][1])) : 1;
}

// [sweep] rounds: round r runs every trial that has fewer than r rounds pooled, in an order
// shuffled anew for the round (seeded by the sweep's seed and r), so a neighbour's burst of
// load spreads over all trials instead of landing on a few. Done trials of earlier rounds
// are reopened, their pooled repeats handed to their next execution. Returns the claim order.
std::vector<std::int64_t> prepare_round(ResultStore& store, const SweepSpec& sweep, const std::vector<std::int64_t>& wanted,
                                        int round, std::map<std::int64_t, std::vector<double>>& prior) {
  prior.clear();
  if (sweep.rounds <= 1) return wanted;
  for (auto id : wanted) {
    if (rounds_pooled(store, id) >= round) continue;
    auto& repeats = prior[id];
    for (const auto& r : store.query("SELECT value FROM metrics WHERE trial_id = CAST(?1 AS INTEGER) AND name = "
                                     "'time/repeat_ms' AND step >= 0 ORDER BY step",
                                     {std::to_string(id)}).rows)
      if (r[0]) repeats.push_back(std::stod(*r[0]));
    store.reopen_for_round(id);
  }
  std::vector<std::int64_t> order;
  for (auto i : seeded_permutation(wanted.size(), sweep.seed * 1000003ull + static_cast<std::uint64_t>(round)))
    order.push_back(wanted[i]);
  return order;
}

// One round of work: `jobs` workers, each starting its trials through its own fork server
// (started once per run, before any thread: see start_fork_servers), until none is left.
void run_workers(Shared& shared, int jobs, const std::vector<std::unique_ptr<engine::ForkServer>>& servers) {
  StopOnSignals signals;
  std::vector<std::thread> workers;
  for (int w = 1; w < jobs; ++w) workers.emplace_back(work, std::ref(shared), w, servers[w].get());
  work(shared, 0, servers[0].get());
  for (auto& w : workers) w.join();
}

}  // namespace

RunSummary run_sweep(const SweepSpec& sweep, const std::vector<TrialSpec>& trials, const PluginRegistry& registry,
                     const RunOptions& options) {
  RunSummary summary;
  const auto network = engine::network_filesystem_of(options.db_path);
  if (network && options.shards <= 1)
    throw std::runtime_error("database " + options.db_path + " is on a network filesystem (" + *network +
                             "): SQLite's WAL journal works only when every process is on one host, so a shared "
                             "database there would be corrupted. Put it on a local disk, or run shards (attnlab run "
                             "--shard I --shards N, one database each; attnlab submit does this) and attnlab merge");
  const auto parent = fs::path(options.db_path).parent_path();
  if (!parent.empty()) fs::create_directories(parent);
  ResultStore store(options.db_path, false, !network);
  trials::define_views(store);  // the trial kinds' views, current in this file too
  const Registered mine = register_trials(store, sweep, trials, registry, options, summary);
  std::map<std::int64_t, std::vector<double>> prior;
  std::vector<std::int64_t> order = prepare_round(store, sweep, mine.wanted, 1, prior);
  store.want(order);
  const auto left = store.wanted_status();
  summary.skipped = left.at("done") + left.at("pruned") + summary.skipped_elsewhere;
  const bool more_rounds = sweep.rounds > 1 && std::any_of(mine.wanted.begin(), mine.wanted.end(), [&](std::int64_t id) {
                             return rounds_pooled(store, id) < sweep.rounds;
                           });
  if (left.at("pending") + left.at("running") == 0 && !more_rounds) {
    spdlog::info("all {} trials already done (use --force to rerun)", summary.total);
    return summary;
  }

  const trials::TrialKind& kind = trials::trial_kind(sweep.kind);
  int jobs = std::max(1, options.jobs);
  if (kind.measures_time() && jobs > 1 && !options.jobs_explicit) jobs = 1;
  if (kind.measures_time())
    spdlog::info(jobs == 1 ? "bench trials run one at a time: timings must not share cores (--jobs N overrides)"
                           : "--jobs {}: bench trials share the cores, and their timings show it",
                 jobs);
  // Before anything below starts a thread or a thread pool (the sgemm ceiling does).
  auto servers = start_fork_servers(jobs);
  const int threads = configure_threads(static_cast<int>(sweep.threads));
  spdlog::info("sweep '{}' ({}): {} trials, {} to run, {} worker(s), {} threads each, database {}{}", sweep.name,
               sweep.kind, summary.total, left.at("pending") + left.at("running"), jobs, threads, options.db_path,
               sweep.rounds > 1 ? fmt::format(", {} rounds in shuffled order", sweep.rounds) : std::string());
  const bool ceiling = kind.measures_time() && options.measure_ceiling;
  if (ceiling) spdlog::info("measuring the sgemm ceiling for this run");
  const nlohmann::json context = collect_context(ceiling);
  if (context.contains("sgemm_gflops")) spdlog::info("sgemm ceiling: {:.1f} GFLOP/s", context["sgemm_gflops"].get<double>());
  const std::int64_t run_id = store.begin_run(context, options.command);

  Shared shared{sweep,
                options,
                order,
                mine.position,
                ClaimPolicy{options.lease_s, static_cast<int>(sweep.max_attempts)},
                options.shards > 1 ? std::function<bool(const std::string&)>(own_process) : engine::owner_alive,
                run_id,
                context.value("sgemm_gflops", 0.0),
                options.progress && jobs == 1 && isatty(STDERR_FILENO),
                static_cast<int>(trials.size())};
  stop_requested = false;
  for (int round = 1; round <= sweep.rounds && !stop_requested; ++round) {
    if (round > 1) {
      order = prepare_round(store, sweep, mine.wanted, round, shared.prior);
      store.want(order);
      if (store.wanted_status().at("pending") == 0) continue;
      spdlog::info("round {} of {}", round, sweep.rounds);
    } else {
      shared.prior = prior;
    }
    shared.round = round;
    run_workers(shared, jobs, servers);
  }
  summary.ran = shared.ran;
  summary.failed = shared.failed;
  summary.pruned = shared.pruned;
  summary.interrupted = stop_requested;
  if (summary.interrupted) spdlog::warn("stopped by a signal: running trials were given back, rerun to resume");
  store.finish_run(run_id);
  return summary;
}

}  // namespace attnlab
