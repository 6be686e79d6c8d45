// Folding shard databases into one (merge.hpp).
#include "runtime/merge.hpp"

#include <SQLiteCpp/SQLiteCpp.h>

#include <map>
#include <optional>
#include <stdexcept>

namespace attnlab {
namespace {

// Better results win: done over pruned over failed over running over pending.
int rank(const std::string& status) {
  if (status == "done") return 4;
  if (status == "pruned") return 3;
  if (status == "failed") return 2;
  if (status == "running") return 1;
  return 0;
}

// Columns of trials copied from the shard (all but id, sweep_id and run_id, which are mapped).
const char* kTrialColumns =
    "key, name, backend, ordinal, config_json, status, error, created_at, started_at, finished_at, claimed_by, "
    "attempt, failures, takeovers, lease_until, heartbeat_at, plugin_version, plugin_build, attnlab_build";

// The target's id of the shard's run `run_id` (copied the first time it is seen).
std::int64_t map_run(SQLite::Database& db, std::int64_t run_id, std::map<std::int64_t, std::int64_t>& mapped) {
  if (auto it = mapped.find(run_id); it != mapped.end()) return it->second;
  SQLite::Statement same(db, R"SQL(SELECT m.id FROM main.runs m JOIN shard.runs s ON s.id = ?
    WHERE m.started_at = s.started_at AND m.context_json = s.context_json AND coalesce(m.command, '') = coalesce(s.command, ''))SQL");
  same.bind(1, static_cast<int64_t>(run_id));
  std::int64_t id = 0;
  if (same.executeStep()) {
    id = same.getColumn(0).getInt64();
  } else {
    SQLite::Statement copy(db, R"SQL(INSERT INTO main.runs (started_at, finished_at, command, git_sha, git_dirty,
      attnlab_version, torch_version, blas, threads, cpu, gpu, hostname, sgemm_gflops, context_json, build_sha, sdpa_backend)
      SELECT started_at, finished_at, command, git_sha, git_dirty, attnlab_version, torch_version, blas, threads, cpu,
             gpu, hostname, sgemm_gflops, context_json, build_sha, sdpa_backend FROM shard.runs WHERE id = ?)SQL");
    copy.bind(1, static_cast<int64_t>(run_id));
    copy.exec();
    id = db.getLastInsertRowid();
  }
  mapped[run_id] = id;
  return id;
}

void copy_results(SQLite::Database& db, std::int64_t from, std::int64_t to) {
  for (const char* table : {"metrics", "samples", "trial_info", "params"}) {
    SQLite::Statement clear(db, std::string("DELETE FROM main.") + table + " WHERE trial_id = ?");
    clear.bind(1, static_cast<int64_t>(to));
    clear.exec();
  }
  const std::pair<const char*, const char*> copies[] = {
      {"metrics", "name, step, value"}, {"samples", "prompt, who, mode, text"}, {"trial_info", "key, value"},
      {"params", "name, value"}};
  for (const auto& [table, columns] : copies) {
    SQLite::Statement copy(db, std::string("INSERT INTO main.") + table + " (trial_id, " + columns + ") SELECT ?, " +
                                   columns + " FROM shard." + table + " WHERE trial_id = ?");
    copy.bind(1, static_cast<int64_t>(to));
    copy.bind(2, static_cast<int64_t>(from));
    copy.exec();
  }
}

// One trial of the shard, with its namesake in the target if there is one.
struct ShardTrial {
  std::int64_t shard_id;
  std::string key, status;
  std::optional<std::int64_t> run;
  std::string sweep;
  std::optional<std::int64_t> target_id;
  std::string target_status;
};

std::vector<ShardTrial> shard_trials(SQLite::Database& db) {
  SQLite::Statement trials(db, R"SQL(SELECT s.id, s.key, s.status, s.run_id, sw.name, m.id, m.status
    FROM shard.trials s JOIN shard.sweeps sw ON sw.id = s.sweep_id LEFT JOIN main.trials m ON m.key = s.key)SQL");
  std::vector<ShardTrial> rows;
  while (trials.executeStep()) {
    ShardTrial r{trials.getColumn(0).getInt64(), trials.getColumn(1).getString(), trials.getColumn(2).getString(),
                 std::nullopt, trials.getColumn(4).getString(), std::nullopt, ""};
    if (!trials.getColumn(3).isNull()) r.run = trials.getColumn(3).getInt64();
    if (!trials.getColumn(5).isNull()) {
      r.target_id = trials.getColumn(5).getInt64();
      r.target_status = trials.getColumn(6).getString();
    }
    rows.push_back(std::move(r));
  }
  return rows;
}

// `run` < 0: the trial has no run (NULL).
void bind_run(SQLite::Statement& statement, int index, std::int64_t run) {
  if (run >= 0) statement.bind(index, static_cast<int64_t>(run));
  else statement.bind(index);
}

// A shard's trial the target lacks: copied; returns its id in the target.
std::int64_t add_trial(SQLite::Database& db, const ShardTrial& r, std::int64_t run) {
  SQLite::Statement insert(db, std::string("INSERT INTO main.trials (sweep_id, run_id, ") + kTrialColumns +
                                   ") SELECT (SELECT id FROM main.sweeps WHERE name = ?), ?, " + kTrialColumns +
                                   " FROM shard.trials WHERE id = ?");
  insert.bind(1, r.sweep);
  bind_run(insert, 2, run);
  insert.bind(3, static_cast<int64_t>(r.shard_id));
  insert.exec();
  return db.getLastInsertRowid();
}

// A shard's trial that got further than the target's: its state replaces the target's.
void replace_trial(SQLite::Database& db, const ShardTrial& r, std::int64_t run) {
  SQLite::Statement update(db, R"SQL(UPDATE main.trials SET (status, error, started_at, finished_at, claimed_by,
    attempt, failures, takeovers, lease_until, heartbeat_at, plugin_version, plugin_build, attnlab_build, run_id) =
    (SELECT status, error, started_at, finished_at, claimed_by, attempt, failures, takeovers, lease_until,
            heartbeat_at, plugin_version, plugin_build, attnlab_build, ? FROM shard.trials WHERE id = ?)
    WHERE id = ?)SQL");
  bind_run(update, 1, run);
  update.bind(2, static_cast<int64_t>(r.shard_id));
  update.bind(3, static_cast<int64_t>(*r.target_id));
  update.exec();
}

// The attached shard into main, in the caller's transaction.
MergeSummary merge_attached(SQLite::Database& db) {
  MergeSummary summary;
  db.exec(R"SQL(INSERT INTO main.sweeps (name, kind, path, source, created_at, updated_at)
    SELECT name, kind, path, source, created_at, updated_at FROM shard.sweeps
    WHERE name NOT IN (SELECT name FROM main.sweeps))SQL");
  std::map<std::int64_t, std::int64_t> runs;
  for (const auto& r : shard_trials(db)) {
    if (r.target_id && rank(r.status) <= rank(r.target_status)) {
      ++summary.kept;
      continue;
    }
    const std::int64_t run = r.run ? map_run(db, *r.run, runs) : -1;
    std::int64_t to = 0;
    if (!r.target_id) {
      to = add_trial(db, r, run);
      ++summary.added;
    } else {
      replace_trial(db, r, run);
      to = *r.target_id;
      ++summary.replaced;
    }
    copy_results(db, r.shard_id, to);
  }
  return summary;
}

}  // namespace

MergeSummary merge_into(ResultStore& target, const std::string& shard_path) {
  SQLite::Database& db = target.db();
  {
    // Open it once on its own first: a missing or foreign file gets a clear message (ATTACH
    // would create an empty one).
    ResultStore shard(shard_path, /*read_only=*/true);
    shard.query("SELECT key FROM trials LIMIT 1");
  }
  SQLite::Statement attach(db, "ATTACH DATABASE ? AS shard");
  attach.bind(1, shard_path);
  attach.exec();
  MergeSummary summary;
  try {
    SQLite::Transaction tx(db, SQLite::TransactionBehavior::IMMEDIATE);
    summary = merge_attached(db);
    tx.commit();
  } catch (...) {
    db.exec("DETACH DATABASE shard");
    throw;
  }
  db.exec("DETACH DATABASE shard");
  return summary;
}

}  // namespace attnlab
