#pragma once
// ResultStore: every number attnlab measures, in one SQLite file (schema in store.cpp,
// documented in docs/RESULTS.md). WAL journal, busy timeout, and one transaction per
// logical write, so a crash never leaves a trial half-recorded: a trial's metrics, samples
// and status land together or not at all.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace SQLite {
class Database;
}

namespace attnlab {

// 2: trials carry their claim (claimed_by, attempt = claims so far, the fencing token;
// failures, takeovers; lease_until, heartbeat_at) and who made
// their result (plugin_version, plugin_build, attnlab_build); runs their build_sha and
// sdpa_backend. 3: the status 'pruned'; superseded_metrics keeps a rerun trial's earlier
// results. An older file is migrated in place when opened for writing.
inline constexpr int kSchemaVersion = 3;

struct MetricRow {
  std::string name;
  std::int64_t step = -1;
  double value = 0.0;
};
struct SampleRow {
  std::string prompt, who, mode, text;
};

// What a finished trial hands to the store in one piece.
struct TrialRecord {
  std::vector<MetricRow> metrics;
  std::vector<SampleRow> samples;
  std::vector<std::pair<std::string, std::string>> info;
};

// Which builds produced a result: the plugin's own version and the hash of its .so
// (PluginRegistry), and the attnlab build (its git sha at compile time).
struct Provenance {
  std::string plugin_version, plugin_build, attnlab_build;
};

// A trial held by one worker: the fencing token is (trial, worker, attempt). Whatever the
// worker writes later lands only while the trial is still running under this very claim.
struct Claim {
  std::int64_t trial_id = 0;
  std::string key, name;
  int attempt = 0;
};

// A trial's attempts that fail (its process crashed, timed out or threw) count against
// max_attempts. A worker that vanishes (kill -9, a lost node, a preempted job) is no fault of
// the trial: its claim is taken over after the lease, up to max_takeovers times.
struct ClaimPolicy {
  double lease_s = 60;    // a claim not heartbeaten for this long may be taken over
  int max_attempts = 1;   // failed attempts allowed per trial
  int max_takeovers = 10; // claims taken over from vanished workers, per trial
};

class ResultStore {
 public:
  // Opens (creating the file and schema if needed) read-write; read_only opens an existing
  // file for queries and never creates or migrates it. `wal` = false keeps a rollback journal
  // (for a shard on a network filesystem, where WAL's shared memory does not work).
  explicit ResultStore(const std::string& path, bool read_only = false, bool wal = true);
  ~ResultStore();

  std::int64_t begin_run(const nlohmann::json& context, const std::string& command);
  void finish_run(std::int64_t run_id);

  // Creates or updates the sweep row; returns its id.
  std::int64_t upsert_sweep(const std::string& name, const std::string& kind, const std::string& path,
                            const std::string& source);

  // Inserts the trial as pending if its key is new; returns (id, current status).
  std::pair<std::int64_t, std::string> ensure_trial(std::int64_t sweep_id, const std::string& key,
                                                    const std::string& name, const std::string& backend,
                                                    int ordinal, const nlohmann::json& config);
  std::optional<std::string> trial_status(const std::string& key);

  // Claims (one transaction): the trials of this invocation are those passed to want(), in
  // that order of preference; a pending one, or a running one whose lease has expired (a takeover), within the policy's
  // limits, first by ordinal. Running trials whose owner is gone (owner_alive says so: a local pid that no
  // longer exists) count as expired at once. Empty when there is nothing to claim.
  void want(const std::vector<std::int64_t>& trial_ids);
  std::optional<Claim> claim(std::int64_t run_id, const std::string& worker, const ClaimPolicy& policy,
                             const std::function<bool(const std::string& owner)>& owner_alive);
  // Extends the lease; false when the claim was lost (taken over after expiry).
  bool heartbeat(const Claim& claim, const std::string& worker, double lease_s);
  // Writes the record and marks done, in one transaction, only under the claim.
  bool finish_claimed(const Claim& claim, const std::string& worker, const TrialRecord& record,
                      const Provenance& provenance);
  // This attempt failed: back to pending while fewer than max_attempts have failed (keeping
  // `error` as the last reason), else failed with it. Only under the claim.
  bool fail_claimed(const Claim& claim, const std::string& worker, const std::string& error,
                    const TrialRecord& partial, int max_attempts);
  // Ends the trial for good under the claim, with no retry: status "failed" (it diverged: a
  // rerun would diverge again) or "pruned" (a pruner stopped it), keeping its curves so far.
  bool end_claimed(const Claim& claim, const std::string& worker, const std::string& status,
                   const std::string& reason, const TrialRecord& partial);
  // Gives the claim back, counting no failure (the worker was asked to stop).
  bool release(const Claim& claim, const std::string& worker);
  // Wanted trials whose workers vanished max_takeovers times become failed; returns how many.
  int reap(const ClaimPolicy& policy, const std::function<bool(const std::string& owner)>& owner_alive);
  // Of the wanted trials: how many are pending, running, done, failed, pruned.
  std::map<std::string, int> wanted_status();
  // Back to pending with no failures counted (--force, --rerun-stale, a new run of failed ones).
  // A done trial's metrics are kept in superseded_metrics under the run that made them.
  void reset_trial(std::int64_t trial_id);
  // A done trial back to pending for its next [sweep] round (its results stay: the next
  // execution pools its repeats with them and replaces them; nothing is superseded).
  void reopen_for_round(std::int64_t trial_id);
  // The provenance of a done trial (empty fields where a version-1 database had none).
  Provenance provenance(std::int64_t trial_id);

  // Marks running (clearing anything an earlier attempt left), in its own transaction: for
  // single-process tools and tests; workers use claim().
  void start_trial(std::int64_t trial_id, std::int64_t run_id);
  // Writes everything and marks done, atomically.
  void finish_trial(std::int64_t trial_id, const TrialRecord& record, const Provenance& provenance = {});
  // Marks failed with the error text, keeping whatever metrics are passed (may be empty).
  void fail_trial(std::int64_t trial_id, const std::string& error, const TrialRecord& partial = {});

  // Runs SQL and returns column names + rows as strings (NULL -> empty, `null_is_empty`).
  struct Table {
    std::vector<std::string> columns;
    std::vector<std::vector<std::optional<std::string>>> rows;
  };
  // `params` are bound to the statement's ?1, ?2, ... (text): user input never enters SQL text.
  Table query(const std::string& sql, const std::vector<std::string>& params = {});

  SQLite::Database& db();

 private:
  void create_schema();
  void migrate_to_3();
  std::unique_ptr<SQLite::Database> db_;
};

}  // namespace attnlab
