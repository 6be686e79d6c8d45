#include "engine/runner.hpp"

#include "base/sink.hpp"
#include "runtime/context.hpp"
#include "trials/kind.hpp"

#include <spdlog/spdlog.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>

namespace attnlab {
namespace {

// Collects a trial's output in memory; the store writes it in one transaction at the end.
class RecordingSink : public TrialSink {
 public:
  // `done_before` of `to_run` trials ran before this one in this invocation: the ETA assumes
  // the remaining trials cost what the finished ones did on average.
  RecordingSink(std::string label, bool live, std::chrono::steady_clock::time_point sweep_start, int index, int total,
                int done_before, int to_run)
      : label_(std::move(label)), live_(live), sweep_start_(sweep_start), index_(index), total_(total),
        done_before_(done_before), to_run_(to_run) {}

  void metric(const std::string& name, double value, std::int64_t step) override {
    record.metrics.push_back({name, step, value});
  }
  void sample(const std::string& prompt, const std::string& who, const std::string& mode,
              const std::string& text) override {
    record.samples.push_back({prompt, who, mode, text});
  }
  void info(const std::string& key, const std::string& value) override { record.info.emplace_back(key, value); }
  void progress(std::int64_t step, std::int64_t total, const std::string& what) override {
    const auto now = std::chrono::steady_clock::now();
    if (live_) {
      if (now - last_draw_ < std::chrono::milliseconds(200) && step != total) return;
      last_draw_ = now;
      const double elapsed = std::chrono::duration<double>(now - sweep_start_).count();
      const double done = (done_before_ + (total > 0 ? double(step) / double(total) : 0.0)) / std::max(1, to_run_);
      std::fprintf(stderr, "\r\033[K[%d/%d] %s  %s %lld/%lld  %.0fs elapsed, ETA %.0fs", index_, total_,
                   label_.c_str(), what.c_str(), static_cast<long long>(step), static_cast<long long>(total), elapsed,
                   done > 0 ? elapsed * (1 - done) / done : 0.0);
      std::fflush(stderr);
    } else if (what != "repeat" && (now - last_draw_ > std::chrono::seconds(15) || step == total)) {
      last_draw_ = now;
      spdlog::info("[{}/{}] {}: {} {}/{}", index_, total_, label_, what, step, total);
    }
  }

  TrialRecord record;

 private:
  std::string label_;
  bool live_;
  std::chrono::steady_clock::time_point sweep_start_, last_draw_{};
  int index_, total_, done_before_, to_run_;
};

}  // namespace

RunSummary run_sweep(const SweepSpec& sweep, const std::vector<TrialSpec>& trials, const PluginRegistry& registry,
                     const RunOptions& options) {
  RunSummary summary;
  summary.total = static_cast<int>(trials.size());
  const int threads = configure_threads(static_cast<int>(sweep.threads));
  spdlog::info("sweep '{}' ({}): {} trials, {} threads, database {}", sweep.name, sweep.kind, trials.size(), threads,
               options.db_path);

  const auto parent = std::filesystem::path(options.db_path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  ResultStore store(options.db_path);

  // Which trials need running is known before any measurement: skip the ceiling when none do.
  const std::int64_t sweep_id = store.upsert_sweep(sweep.name, sweep.kind, sweep.path, sweep.source);
  std::vector<std::pair<std::int64_t, bool>> plan;
  for (size_t i = 0; i < trials.size(); ++i) {
    const auto& t = trials[i];
    auto [id, status] = store.ensure_trial(sweep_id, t.key, t.name, t.backend, static_cast<int>(i), t.config);
    plan.emplace_back(id, options.force || status != "done");
  }
  int to_run = 0;
  for (const auto& p : plan) to_run += p.second;
  if (to_run == 0) {
    spdlog::info("all {} trials already done (use --force to rerun)", trials.size());
    summary.skipped = summary.total;
    return summary;
  }

  const trials::TrialKind& kind = trials::trial_kind(sweep.kind);
  if (kind.measures_time()) spdlog::info("measuring the sgemm ceiling for this run");
  const nlohmann::json context = collect_context(/*measure_sgemm=*/kind.measures_time());
  if (context.contains("sgemm_gflops")) spdlog::info("sgemm ceiling: {:.1f} GFLOP/s", context["sgemm_gflops"].get<double>());
  const std::int64_t run_id = store.begin_run(context, options.command);
  const double sgemm = context.value("sgemm_gflops", 0.0);

  const bool live = options.progress && isatty(STDERR_FILENO);
  const auto start = std::chrono::steady_clock::now();
  int index = 0;
  for (size_t i = 0; i < trials.size(); ++i) {
    const auto& trial = trials[i];
    const auto [trial_id, needs_run] = plan[i];
    ++index;
    if (!needs_run) {
      ++summary.skipped;
      continue;
    }
    store.start_trial(trial_id, run_id);
    RecordingSink sink(trial.name, live, start, index, summary.total, summary.ran + summary.failed, to_run);
    const auto t0 = std::chrono::steady_clock::now();
    try {
      kind.run(trials::TrialEnv{sweep, trial, registry, options.results_dir, sgemm}, sink);
      sink.metric("trial/wall_s", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), -1);
      store.finish_trial(trial_id, sink.record);
      ++summary.ran;
      if (live) std::fprintf(stderr, "\r\033[K");
      spdlog::info("[{}/{}] {} done ({:.1f} s)", index, summary.total, trial.name,
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    } catch (const std::exception& e) {
      std::string what = e.what();
      if (auto cut = what.find("\nException raised from"); cut != std::string::npos) what.resize(cut);
      store.fail_trial(trial_id, what, sink.record);
      ++summary.failed;
      if (live) std::fprintf(stderr, "\r\033[K");
      spdlog::error("[{}/{}] {} failed: {}", index, summary.total, trial.name, what);
    }
  }
  store.finish_run(run_id);
  return summary;
}

}  // namespace attnlab
