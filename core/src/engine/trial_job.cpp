// One trial in its own process: the child side of trial_job.hpp.
#include "engine/trial_job.hpp"

#include "base/sink.hpp"
#include "base/trial_stop.hpp"
#include "engine/pruner.hpp"
#include "runtime/context.hpp"
#include "trials/kind.hpp"
#include "trials/schemas.hpp"

#include <attnlab/registry.hpp>

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

namespace attnlab::engine {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// Collects a trial's output in memory (the worker writes it in one transaction) and draws its
// progress: a live line for a terminal, a log line every 15 s otherwise.
class RecordingSink : public TrialSink {
 public:
  RecordingSink(std::string label, bool live) : label_(std::move(label)), live_(live), start_(Clock::now()) {}

  void metric(const std::string& name, double value, std::int64_t step) override {
    record.metrics.push_back({name, step, value});
    if (pruner) pruner->observe(name, step, value);
  }
  void sample(const std::string& prompt, const std::string& who, const std::string& mode,
              const std::string& text) override {
    record.samples.push_back({prompt, who, mode, text});
  }
  void info(const std::string& key, const std::string& value) override { record.info.emplace_back(key, value); }
  void progress(std::int64_t step, std::int64_t total, const std::string& what) override {
    const auto now = Clock::now();
    if (live_) {
      if (now - last_draw_ < std::chrono::milliseconds(200) && step != total) return;
      last_draw_ = now;
      const double elapsed = std::chrono::duration<double>(now - start_).count();
      const double left = step > 0 ? elapsed * double(total - step) / double(step) : 0.0;
      std::fprintf(stderr, "\r\033[K%s  %s %lld/%lld  %.0fs, ETA %.0fs", label_.c_str(), what.c_str(),
                   static_cast<long long>(step), static_cast<long long>(total), elapsed, left);
      std::fflush(stderr);
    } else if (what != "repeat" && (now - last_draw_ > std::chrono::seconds(15) || step == total)) {
      last_draw_ = now;
      spdlog::info("{}: {} {}/{}", label_, what, step, total);
    }
  }
  void clear_line() const {
    if (live_) std::fprintf(stderr, "\r\033[K");
  }

  TrialRecord record;
  MedianPruner* pruner = nullptr;

 private:
  std::string label_;
  bool live_;
  Clock::time_point start_, last_draw_{};
};

json record_json(const TrialRecord& r) {
  json metrics = json::array(), samples = json::array(), info = json::array();
  for (const auto& m : r.metrics) metrics.push_back({m.name, m.step, m.value});
  for (const auto& s : r.samples) samples.push_back({s.prompt, s.who, s.mode, s.text});
  for (const auto& [k, v] : r.info) info.push_back({k, v});
  return {{"metrics", metrics}, {"samples", samples}, {"info", info}};
}

TrialRecord record_from(const json& j) {
  TrialRecord r;
  for (const auto& m : j.at("metrics")) {
    // JSON has no NaN or infinity: a non-finite value was written as null.
    const double value = m[2].is_null() ? std::nan("") : m[2].get<double>();
    r.metrics.push_back({m[0].get<std::string>(), m[1].get<std::int64_t>(), value});
  }
  for (const auto& s : j.at("samples"))
    r.samples.push_back({s[0].get<std::string>(), s[1].get<std::string>(), s[2].get<std::string>(),
                         s[3].get<std::string>()});
  for (const auto& i : j.at("info")) r.info.emplace_back(i[0].get<std::string>(), i[1].get<std::string>());
  return r;
}

void write_atomically(const std::string& path, const json& content) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    out << content.dump();
    if (!out.flush()) throw std::runtime_error("cannot write " + tmp);
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace

json TrialJob::to_json() const {
  return {{"sweep_path", sweep_path}, {"sweep_source", sweep_source}, {"overrides", overrides},
          {"trial_key", trial_key},   {"results_dir", results_dir},   {"sgemm_gflops", sgemm_gflops},
          {"label", label},           {"live", live},
          {"db_path", db_path},       {"round", round},               {"prior_repeats_ms", prior_repeats_ms}};
}

TrialJob TrialJob::from_json(const json& j) {
  TrialJob job;
  job.sweep_path = j.at("sweep_path");
  job.sweep_source = j.at("sweep_source");
  job.overrides = j.at("overrides").get<std::vector<std::string>>();
  job.trial_key = j.at("trial_key");
  job.results_dir = j.at("results_dir");
  job.sgemm_gflops = j.at("sgemm_gflops");
  job.label = j.at("label");
  job.live = j.at("live");
  job.db_path = j.value("db_path", "");
  job.round = j.value("round", 1);
  job.prior_repeats_ms = j.value("prior_repeats_ms", std::vector<double>{});
  return job;
}

// The seq_len of a trial as the params table holds it (the pruner compares like with like).
static std::string seq_len_of(const TrialSpec& trial) {
  const auto& grid = trial.config.at("grid");
  if (!grid.contains("seq_len")) return "";
  const auto& v = grid["seq_len"];
  return v.is_string() ? v.get<std::string>() : v.dump();
}

int run_trial_job(const std::string& job_path, const std::string& result_path, const std::string& spawn) {
  std::string error;
  RecordingSink* sink_seen = nullptr;
  try {
    std::ifstream in(job_path);
    const TrialJob job = TrialJob::from_json(json::parse(in));
    PluginRegistry registry;
    registry.discover();
    const SweepSpec sweep =
        load_sweep_source(job.sweep_path, job.sweep_source, registry, trials::all_schemas(), job.overrides);
    const auto specs = expand_trials(sweep, registry);
    const auto trial = std::find_if(specs.begin(), specs.end(), [&](const TrialSpec& t) { return t.key == job.trial_key; });
    if (trial == specs.end())
      throw std::runtime_error("trial " + job.trial_key + " is not in sweep '" + sweep.name +
                               "' as loaded here (plugins changed under the worker?)");
    configure_threads(static_cast<int>(sweep.threads));
    RecordingSink sink(job.label, job.live);
    sink_seen = &sink;
    MedianPruner pruner(sweep, job.db_path, seq_len_of(*trial));
    sink.pruner = &pruner;
    const auto start = Clock::now();
    const trials::TrialEnv env{sweep,           *trial,    registry, job.results_dir,
                               job.sgemm_gflops, job.round, job.prior_repeats_ms};
    try {
      trials::trial_kind(sweep.kind).run(env, sink);
    } catch (const TrialStopped& stopped) {
      sink.clear_line();
      write_atomically(result_path, {{"error", stopped.what()}, {"status", stopped.status},
                                     {"record", record_json(sink.record)}});
      std::fprintf(stderr, "%s\n", stopped.what());
      return kExitTrialError;
    }
    sink.metric("trial/wall_s", std::chrono::duration<double>(Clock::now() - start).count(), -1);
    sink.info("engine.spawn", spawn);
    sink.clear_line();
    const LoadedPlugin& plugin = registry.get(trial->backend);
    write_atomically(result_path, {{"record", record_json(sink.record)},
                                   {"provenance", {plugin.version, plugin.build_id, build_sha()}}});
    return 0;
  } catch (const std::exception& e) {
    error = e.what();
    if (auto cut = error.find("\nException raised from"); cut != std::string::npos) error.resize(cut);
  }
  if (sink_seen) sink_seen->clear_line();
  try {
    write_atomically(result_path, {{"error", error}});
  } catch (const std::exception&) {
  }
  std::fprintf(stderr, "%s\n", error.c_str());
  return kExitTrialError;
}

TrialOutcome read_trial_result(const std::string& result_path) {
  TrialOutcome outcome;
  std::ifstream in(result_path);
  if (!in) {
    outcome.error = "the trial's process left no result";
    return outcome;
  }
  try {
    const json j = json::parse(in);
    if (j.contains("error")) {
      outcome.error = j["error"];
      if (j.contains("status")) {
        outcome.final_status = j["status"];
        outcome.record = record_from(j.at("record"));
      }
      return outcome;
    }
    outcome.record = record_from(j.at("record"));
    const auto& p = j.at("provenance");
    outcome.provenance = {p[0].get<std::string>(), p[1].get<std::string>(), p[2].get<std::string>()};
    outcome.ok = true;
  } catch (const std::exception& e) {
    outcome.error = std::string("unreadable result file: ") + e.what();
  }
  return outcome;
}

}  // namespace attnlab::engine
