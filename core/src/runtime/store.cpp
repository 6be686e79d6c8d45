#include "runtime/store.hpp"

#include "base/text.hpp"

#include <SQLiteCpp/SQLiteCpp.h>

#include <chrono>
#include <ctime>
#include <stdexcept>

namespace attnlab {
namespace {

std::string now_utc() { return base::utc_now("%Y-%m-%dT%H:%M:%SZ"); }

// Version 3 (an older file is migrated: migrate_to_3). Views are the query presets
// (docs/RESULTS.md). Writers take the lock up front
// (BEGIN IMMEDIATE): a deferred read-then-write transaction cannot wait for a second writer.
const char* kSchema = R"SQL(
CREATE TABLE IF NOT EXISTS schema_info (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY,
  started_at TEXT NOT NULL, finished_at TEXT,
  command TEXT, git_sha TEXT, git_dirty INTEGER, attnlab_version TEXT, torch_version TEXT,
  blas TEXT, threads INTEGER, cpu TEXT, gpu TEXT, hostname TEXT, sgemm_gflops REAL,
  context_json TEXT NOT NULL, build_sha TEXT, sdpa_backend TEXT);
CREATE TABLE IF NOT EXISTS sweeps (
  id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, path TEXT,
  source TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
  id INTEGER PRIMARY KEY,
  sweep_id INTEGER NOT NULL REFERENCES sweeps(id),
  run_id INTEGER REFERENCES runs(id),
  key TEXT NOT NULL UNIQUE, name TEXT NOT NULL, backend TEXT NOT NULL, ordinal INTEGER,
  config_json TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending','running','done','failed','pruned')),
  error TEXT, created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT,
  claimed_by TEXT, attempt INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0,
  takeovers INTEGER NOT NULL DEFAULT 0, lease_until REAL, heartbeat_at REAL,
  plugin_version TEXT, plugin_build TEXT, attnlab_build TEXT);
CREATE INDEX IF NOT EXISTS trials_sweep ON trials(sweep_id, status);
CREATE TABLE IF NOT EXISTS params (
  trial_id INTEGER NOT NULL REFERENCES trials(id) ON DELETE CASCADE,
  name TEXT NOT NULL, value TEXT, PRIMARY KEY (trial_id, name));
CREATE TABLE IF NOT EXISTS metrics (
  trial_id INTEGER NOT NULL REFERENCES trials(id) ON DELETE CASCADE,
  name TEXT NOT NULL, step INTEGER NOT NULL DEFAULT -1, value REAL,
  PRIMARY KEY (trial_id, name, step));
CREATE TABLE IF NOT EXISTS samples (
  id INTEGER PRIMARY KEY,
  trial_id INTEGER NOT NULL REFERENCES trials(id) ON DELETE CASCADE,
  prompt TEXT, who TEXT, mode TEXT, text TEXT);
CREATE TABLE IF NOT EXISTS trial_info (
  trial_id INTEGER NOT NULL REFERENCES trials(id) ON DELETE CASCADE,
  key TEXT NOT NULL, value TEXT, PRIMARY KEY (trial_id, key));
-- A done trial's metrics when it is run again (--force, --rerun-stale): kept, tagged with
-- the run that made them, for before/after comparisons (attnlab compare --against-run).
CREATE TABLE IF NOT EXISTS superseded_metrics (
  trial_id INTEGER NOT NULL REFERENCES trials(id) ON DELETE CASCADE,
  run_id INTEGER, name TEXT NOT NULL, step INTEGER NOT NULL, value REAL,
  PRIMARY KEY (trial_id, run_id, name, step));

)SQL";

// The trials table's columns in order (the version-2 table is copied into version 3's by them).
const char* kTrialsColumns =
    "id, sweep_id, run_id, key, name, backend, ordinal, config_json, status, error, created_at, started_at, "
    "finished_at, claimed_by, attempt, failures, takeovers, lease_until, heartbeat_at, plugin_version, plugin_build, "
    "attnlab_build";

// Views hold no data: each is dropped and made again on every open for writing, so a database
// always has the current query presets (a new column reaches old files too). These two are the
// store's own, in long format; the trial kinds' views (trial_summary, distill_summary, ...) are
// made by trials::define_views (trials/tables.hpp), a layer above, after it opens a database.
const char* kLongViews = R"SQL(
-- Every final metric with its trial's sweep and backend: the long format for pivots.
CREATE VIEW final_metrics AS
SELECT s.name AS sweep, t.id AS trial_id, t.name AS trial, t.backend, m.name AS metric, m.value
FROM metrics m JOIN trials t ON t.id = m.trial_id JOIN sweeps s ON s.id = t.sweep_id
WHERE m.step = -1;

-- Per-step curves (loss, KL, blend weights ...).
CREATE VIEW curves AS
SELECT s.name AS sweep, t.id AS trial_id, t.name AS trial, t.backend, m.name AS metric, m.step, m.value
FROM metrics m JOIN trials t ON t.id = m.trial_id JOIN sweeps s ON s.id = t.sweep_id
WHERE m.step >= 0;
)SQL";

}  // namespace

ResultStore::ResultStore(const std::string& path, bool read_only, bool wal) {
  const int flags = read_only ? SQLite::OPEN_READONLY : (SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
  // 30 s: workers of one host wait their turn for the write lock rather than fail.
  db_ = std::make_unique<SQLite::Database>(path, flags, /*busy_timeout_ms=*/30000);
  if (read_only) return;
  db_->exec(wal ? "PRAGMA journal_mode=WAL" : "PRAGMA journal_mode=DELETE");
  db_->exec("PRAGMA foreign_keys=ON");
  create_schema();
}

ResultStore::~ResultStore() = default;

SQLite::Database& ResultStore::db() { return *db_; }

void ResultStore::create_schema() {
  migrate_to_3();
  SQLite::Transaction tx(*db_, SQLite::TransactionBehavior::IMMEDIATE);
  db_->exec(kSchema);
  for (const char* view : {"final_metrics", "curves"}) db_->exec(std::string("DROP VIEW IF EXISTS ") + view);
  db_->exec(kLongViews);
  SQLite::Statement version(*db_, "SELECT version FROM schema_info");
  if (version.executeStep()) {
    const int found = version.getColumn(0).getInt();
    version.reset();
    if (found != kSchemaVersion)
      throw std::runtime_error("database " + db_->getFilename() + " has schema version " + std::to_string(found) +
                               ", this attnlab uses " + std::to_string(kSchemaVersion) +
                               " (a newer attnlab wrote it: use that one, or another --db)");
  } else {
    db_->exec("INSERT INTO schema_info(version) VALUES (" + std::to_string(kSchemaVersion) + ")");
  }
  tx.commit();
}

// An older file is brought to version 3 in place, in one transaction, before anything else
// touches it. Version 1 lacks the claim and provenance columns (empty for old rows: their
// results have no recorded provenance, so they read as stale until rerun); version 2's
// trials table refuses the status 'pruned', and SQLite cannot alter a CHECK, so the table is
// rebuilt (SQLite's documented 12-step procedure: foreign keys off, which works only outside
// a transaction, else dropping the old table would cascade into every result).
void ResultStore::migrate_to_3() {
  int found = 0;
  {
    SQLite::Statement has(*db_, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_info'");
    if (!has.executeStep()) return;  // a new file
    SQLite::Statement version(*db_, "SELECT version FROM schema_info");
    if (!version.executeStep()) return;
    found = version.getColumn(0).getInt();
  }
  if (found >= 3) return;
  db_->exec("PRAGMA foreign_keys=OFF");
  {
    SQLite::Transaction tx(*db_, SQLite::TransactionBehavior::IMMEDIATE);
    if (found == 1) {
      for (const char* column : {"claimed_by TEXT", "attempt INTEGER NOT NULL DEFAULT 0",
                                 "failures INTEGER NOT NULL DEFAULT 0", "takeovers INTEGER NOT NULL DEFAULT 0",
                                 "lease_until REAL", "heartbeat_at REAL", "plugin_version TEXT", "plugin_build TEXT",
                                 "attnlab_build TEXT"})
        db_->exec(std::string("ALTER TABLE trials ADD COLUMN ") + column);
      for (const char* column : {"build_sha TEXT", "sdpa_backend TEXT"})
        db_->exec(std::string("ALTER TABLE runs ADD COLUMN ") + column);
    }
    // Views name the table: they go first (create_schema makes them again).
    std::vector<std::string> views;
    SQLite::Statement list(*db_, "SELECT name FROM sqlite_master WHERE type = 'view'");
    while (list.executeStep()) views.push_back(list.getColumn(0).getString());
    for (const auto& v : views) db_->exec("DROP VIEW \"" + v + "\"");
    std::string create = kSchema;
    const auto from = create.find("CREATE TABLE IF NOT EXISTS trials (");
    const auto to = create.find(");", from) + 2;
    create = create.substr(from, to - from);
    create.replace(create.find("trials ("), 6, "trials_v3");
    db_->exec(create);
    db_->exec("INSERT INTO trials_v3 SELECT " + std::string(kTrialsColumns) + " FROM trials");
    db_->exec("DROP TABLE trials");
    db_->exec("ALTER TABLE trials_v3 RENAME TO trials");
    db_->exec("UPDATE schema_info SET version = 3");
    tx.commit();
  }
  db_->exec("PRAGMA foreign_keys=ON");
}

std::int64_t ResultStore::begin_run(const nlohmann::json& given, const std::string& command) {
  const nlohmann::json c = given.is_object() ? given : nlohmann::json::object();
  SQLite::Statement insert(*db_, R"SQL(INSERT INTO runs (started_at, command, git_sha, git_dirty, attnlab_version,
    torch_version, blas, threads, cpu, gpu, hostname, sgemm_gflops, context_json, build_sha, sdpa_backend)
    VALUES (:t, :cmd, :sha, :dirty, :ver, :torch, :blas, :threads, :cpu, :gpu, :host, :sgemm, :json, :build,
            :sdpa))SQL");
  insert.bind(":t", now_utc());
  insert.bind(":cmd", command);
  insert.bind(":sha", c.value("git_sha", ""));
  insert.bind(":dirty", c.value("git_dirty", false) ? 1 : 0);
  insert.bind(":ver", c.value("attnlab_version", ""));
  insert.bind(":torch", c.value("torch_version", ""));
  insert.bind(":blas", c.value("blas", ""));
  insert.bind(":threads", c.value("threads", 0));
  insert.bind(":cpu", c.value("cpu", ""));
  insert.bind(":gpu", c.value("gpu", ""));
  insert.bind(":host", c.value("hostname", ""));
  if (c.contains("sgemm_gflops")) insert.bind(":sgemm", c["sgemm_gflops"].get<double>());
  insert.bind(":json", c.dump());
  insert.bind(":build", c.value("build_sha", ""));
  insert.bind(":sdpa", c.value("sdpa_backend", ""));
  insert.exec();
  return db_->getLastInsertRowid();
}

void ResultStore::finish_run(std::int64_t run_id) {
  SQLite::Statement update(*db_, "UPDATE runs SET finished_at = ? WHERE id = ?");
  update.bind(1, now_utc());
  update.bind(2, static_cast<int64_t>(run_id));
  update.exec();
}

std::int64_t ResultStore::upsert_sweep(const std::string& name, const std::string& kind, const std::string& path,
                                       const std::string& source) {
  SQLite::Statement upsert(*db_, R"SQL(INSERT INTO sweeps (name, kind, path, source, created_at, updated_at)
    VALUES (?1, ?2, ?3, ?4, ?5, ?5)
    ON CONFLICT(name) DO UPDATE SET kind = ?2, path = ?3, source = ?4, updated_at = ?5)SQL");
  upsert.bind(1, name);
  upsert.bind(2, kind);
  upsert.bind(3, path);
  upsert.bind(4, source);
  upsert.bind(5, now_utc());
  upsert.exec();
  SQLite::Statement id(*db_, "SELECT id FROM sweeps WHERE name = ?");
  id.bind(1, name);
  id.executeStep();
  return id.getColumn(0).getInt64();
}

std::pair<std::int64_t, std::string> ResultStore::ensure_trial(std::int64_t sweep_id, const std::string& key,
                                                               const std::string& name, const std::string& backend,
                                                               int ordinal, const nlohmann::json& config) {
  SQLite::Transaction tx(*db_, SQLite::TransactionBehavior::IMMEDIATE);
  SQLite::Statement find(*db_, "SELECT id, status FROM trials WHERE key = ?");
  find.bind(1, key);
  if (find.executeStep()) {
    auto out = std::make_pair(find.getColumn(0).getInt64(), find.getColumn(1).getString());
    SQLite::Statement order(*db_, "UPDATE trials SET ordinal = ?, name = ? WHERE id = ?");
    order.bind(1, ordinal);
    order.bind(2, name);
    order.bind(3, static_cast<int64_t>(out.first));
    order.exec();
    tx.commit();
    return out;
  }
  SQLite::Statement insert(*db_, R"SQL(INSERT INTO trials (sweep_id, key, name, backend, ordinal, config_json,
    status, created_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?))SQL");
  insert.bind(1, static_cast<int64_t>(sweep_id));
  insert.bind(2, key);
  insert.bind(3, name);
  insert.bind(4, backend);
  insert.bind(5, ordinal);
  insert.bind(6, config.dump());
  insert.bind(7, now_utc());
  insert.exec();
  const std::int64_t id = db_->getLastInsertRowid();
  // Flattened parameters for querying: grid axes by name, backend parameters as backend.<name>.
  SQLite::Statement param(*db_, "INSERT INTO params (trial_id, name, value) VALUES (?, ?, ?)");
  auto add = [&](const std::string& k, const nlohmann::json& v) {
    param.bind(1, static_cast<int64_t>(id));
    param.bind(2, k);
    param.bind(3, v.is_string() ? v.get<std::string>() : v.dump());
    param.exec();
    param.reset();
  };
  if (config.contains("grid"))
    for (const auto& [k, v] : config["grid"].items()) add(k, v);
  if (config.contains("backend_params"))
    for (const auto& [k, v] : config["backend_params"].items()) add("backend." + k, v);
  tx.commit();
  return {id, "pending"};
}

std::optional<std::string> ResultStore::trial_status(const std::string& key) {
  SQLite::Statement find(*db_, "SELECT status FROM trials WHERE key = ?");
  find.bind(1, key);
  if (!find.executeStep()) return std::nullopt;
  return find.getColumn(0).getString();
}

static void clear_results(SQLite::Database& db, std::int64_t trial_id) {
  for (const char* table : {"metrics", "samples", "trial_info"}) {
    SQLite::Statement clear(db, std::string("DELETE FROM ") + table + " WHERE trial_id = ?");
    clear.bind(1, static_cast<int64_t>(trial_id));
    clear.exec();
  }
}

void ResultStore::start_trial(std::int64_t trial_id, std::int64_t run_id) {
  SQLite::Transaction tx(*db_, SQLite::TransactionBehavior::IMMEDIATE);
  clear_results(*db_, trial_id);
  SQLite::Statement update(*db_, R"SQL(UPDATE trials SET status = 'running', run_id = ?, error = NULL,
    started_at = ?, finished_at = NULL WHERE id = ?)SQL");
  update.bind(1, static_cast<int64_t>(run_id));
  update.bind(2, now_utc());
  update.bind(3, static_cast<int64_t>(trial_id));
  update.exec();
  tx.commit();
}

static void write_record(SQLite::Database& db, std::int64_t trial_id, const TrialRecord& record) {
  SQLite::Statement metric(db, "INSERT OR REPLACE INTO metrics (trial_id, name, step, value) VALUES (?, ?, ?, ?)");
  for (const auto& m : record.metrics) {
    metric.bind(1, static_cast<int64_t>(trial_id));
    metric.bind(2, m.name);
    metric.bind(3, static_cast<int64_t>(m.step));
    metric.bind(4, m.value);
    metric.exec();
    metric.reset();
  }
  SQLite::Statement sample(db, "INSERT INTO samples (trial_id, prompt, who, mode, text) VALUES (?, ?, ?, ?, ?)");
  for (const auto& s : record.samples) {
    sample.bind(1, static_cast<int64_t>(trial_id));
    sample.bind(2, s.prompt);
    sample.bind(3, s.who);
    sample.bind(4, s.mode);
    sample.bind(5, s.text);
    sample.exec();
    sample.reset();
  }
  SQLite::Statement info(db, "INSERT OR REPLACE INTO trial_info (trial_id, key, value) VALUES (?, ?, ?)");
  for (const auto& [k, v] : record.info) {
    info.bind(1, static_cast<int64_t>(trial_id));
    info.bind(2, k);
    info.bind(3, v);
    info.exec();
    info.reset();
  }
}

static void mark_done(SQLite::Database& db, std::int64_t trial_id, const Provenance& provenance) {
  SQLite::Statement update(db, R"SQL(UPDATE trials SET status = 'done', error = NULL, finished_at = ?,
    plugin_version = ?, plugin_build = ?, attnlab_build = ?, lease_until = NULL WHERE id = ?)SQL");
  update.bind(1, now_utc());
  update.bind(2, provenance.plugin_version);
  update.bind(3, provenance.plugin_build);
  update.bind(4, provenance.attnlab_build);
  update.bind(5, static_cast<int64_t>(trial_id));
  update.exec();
}

void ResultStore::finish_trial(std::int64_t trial_id, const TrialRecord& record, const Provenance& provenance) {
  SQLite::Transaction tx(*db_, SQLite::TransactionBehavior::IMMEDIATE);
  clear_results(*db_, trial_id);
  write_record(*db_, trial_id, record);
  mark_done(*db_, trial_id, provenance);
  tx.commit();
}

namespace {
double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}
// Still held by this worker under this attempt?
bool holds(SQLite::Database& db, const Claim& claim, const std::string& worker) {
  SQLite::Statement q(db, "SELECT 1 FROM trials WHERE id = ? AND claimed_by = ? AND attempt = ? AND status = 'running'");
  q.bind(1, static_cast<int64_t>(claim.trial_id));
  q.bind(2, worker);
  q.bind(3, claim.attempt);
  return q.executeStep();
}
}  // namespace

void ResultStore::want(const std::vector<std::int64_t>& trial_ids) {
  SQLite::Transaction tx(*db_, SQLite::TransactionBehavior::IMMEDIATE);
  // rank: the order trials are claimed in (the sweep's, or a round's shuffle).
  db_->exec("CREATE TEMP TABLE IF NOT EXISTS wanted (id INTEGER PRIMARY KEY, rank INTEGER)");
  db_->exec("DELETE FROM wanted");
  SQLite::Statement insert(*db_, "INSERT OR IGNORE INTO wanted (id, rank) VALUES (?, ?)");
  for (std::size_t i = 0; i < trial_ids.size(); ++i) {
    insert.bind(1, static_cast<int64_t>(trial_ids[i]));
    insert.bind(2, static_cast<int64_t>(i));
    insert.exec();
    insert.reset();
  }
  tx.commit();
}

void ResultStore::reopen_for_round(std::int64_t trial_id) {
  SQLite::Statement update(*db_, R"SQL(UPDATE trials SET status = 'pending', failures = 0, takeovers = 0,
    claimed_by = NULL, lease_until = NULL WHERE id = ? AND status = 'done')SQL");
  update.bind(1, static_cast<int64_t>(trial_id));
  update.exec();
}

// Running trials of dead local owners get an expired lease, so the claim below can take them.
static void expire_dead_owners(SQLite::Database& db, const std::function<bool(const std::string&)>& owner_alive) {
  SQLite::Statement running(db, R"SQL(SELECT t.id, t.claimed_by FROM trials t JOIN wanted w ON w.id = t.id
    WHERE t.status = 'running' AND t.claimed_by IS NOT NULL)SQL");
  std::vector<std::pair<std::int64_t, std::string>> dead;
  while (running.executeStep())
    if (!owner_alive(running.getColumn(1).getString()))
      dead.emplace_back(running.getColumn(0).getInt64(), running.getColumn(1).getString());
  SQLite::Statement expire(db, "UPDATE trials SET lease_until = 0 WHERE id = ? AND claimed_by = ?");
  for (const auto& [id, owner] : dead) {
    expire.bind(1, static_cast<int64_t>(id));
    expire.bind(2, owner);
    expire.exec();
    expire.reset();
  }
}

std::optional<Claim> ResultStore::claim(std::int64_t run_id, const std::string& worker, const ClaimPolicy& policy,
                                        const std::function<bool(const std::string&)>& owner_alive) {
  SQLite::Transaction tx(*db_, SQLite::TransactionBehavior::IMMEDIATE);
  expire_dead_owners(*db_, owner_alive);
  const double now = unix_now();
  // A pending trial, or a running one whose worker stopped heartbeating (a takeover).
  SQLite::Statement pick(*db_, R"SQL(SELECT t.id, t.status = 'running' FROM trials t JOIN wanted w ON w.id = t.id
    WHERE t.failures < :max AND
      (t.status = 'pending' OR
       (t.status = 'running' AND (t.lease_until IS NULL OR t.lease_until < :now) AND t.takeovers < :takeovers))
    ORDER BY w.rank, t.ordinal, t.id LIMIT 1)SQL");
  pick.bind(":now", now);
  pick.bind(":max", policy.max_attempts);
  pick.bind(":takeovers", policy.max_takeovers);
  if (!pick.executeStep()) return std::nullopt;
  const std::int64_t id = pick.getColumn(0).getInt64();
  const int takeover = pick.getColumn(1).getInt();
  pick.reset();
  clear_results(*db_, id);
  SQLite::Statement take(*db_, R"SQL(UPDATE trials SET status = 'running', run_id = :run, claimed_by = :me,
    attempt = attempt + 1, takeovers = takeovers + :takeover, lease_until = :lease, heartbeat_at = :now,
    started_at = :t, finished_at = NULL
    WHERE id = :id RETURNING key, name, attempt)SQL");
  take.bind(":run", static_cast<int64_t>(run_id));
  take.bind(":me", worker);
  take.bind(":takeover", takeover);
  take.bind(":lease", now + policy.lease_s);
  take.bind(":now", now);
  take.bind(":t", now_utc());
  take.bind(":id", static_cast<int64_t>(id));
  if (!take.executeStep()) return std::nullopt;
  Claim claim{id, take.getColumn(0).getString(), take.getColumn(1).getString(), take.getColumn(2).getInt()};
  take.reset();
  tx.commit();
  return claim;
}

bool ResultStore::heartbeat(const Claim& claim, const std::string& worker, double lease_s) {
  const double now = unix_now();
  SQLite::Statement update(*db_, R"SQL(UPDATE trials SET lease_until = ?, heartbeat_at = ?
    WHERE id = ? AND claimed_by = ? AND attempt = ? AND status = 'running')SQL");
  update.bind(1, now + lease_s);
  update.bind(2, now);
  update.bind(3, static_cast<int64_t>(claim.trial_id));
  update.bind(4, worker);
  update.bind(5, claim.attempt);
  return update.exec() == 1;
}

bool ResultStore::finish_claimed(const Claim& claim, const std::string& worker, const TrialRecord& record,
                                 const Provenance& provenance) {
  SQLite::Transaction tx(*db_, SQLite::TransactionBehavior::IMMEDIATE);
  if (!holds(*db_, claim, worker)) return false;  // rolled back: someone else holds it now
  clear_results(*db_, claim.trial_id);
  write_record(*db_, claim.trial_id, record);
  mark_done(*db_, claim.trial_id, provenance);
  tx.commit();
  return true;
}

bool ResultStore::fail_claimed(const Claim& claim, const std::string& worker, const std::string& error,
                               const TrialRecord& partial, int max_attempts) {
  SQLite::Transaction tx(*db_, SQLite::TransactionBehavior::IMMEDIATE);
  if (!holds(*db_, claim, worker)) return false;
  clear_results(*db_, claim.trial_id);
  write_record(*db_, claim.trial_id, partial);
  SQLite::Statement count(*db_, "UPDATE trials SET failures = failures + 1 WHERE id = ? RETURNING failures");
  count.bind(1, static_cast<int64_t>(claim.trial_id));
  count.executeStep();
  const int failures = count.getColumn(0).getInt();
  count.reset();
  const bool retry = failures < max_attempts;
  SQLite::Statement update(*db_, R"SQL(UPDATE trials SET status = ?, error = ?, finished_at = ?, lease_until = NULL
    WHERE id = ?)SQL");
  update.bind(1, retry ? "pending" : "failed");
  update.bind(2, retry ? "failure " + std::to_string(failures) + " of " + std::to_string(max_attempts) +
                             " allowed (retrying): " + error
                       : error);
  update.bind(3, now_utc());
  update.bind(4, static_cast<int64_t>(claim.trial_id));
  update.exec();
  tx.commit();
  return true;
}

bool ResultStore::end_claimed(const Claim& claim, const std::string& worker, const std::string& status,
                              const std::string& reason, const TrialRecord& partial) {
  if (status != "failed" && status != "pruned") throw std::invalid_argument("end_claimed: status " + status);
  SQLite::Transaction tx(*db_, SQLite::TransactionBehavior::IMMEDIATE);
  if (!holds(*db_, claim, worker)) return false;
  clear_results(*db_, claim.trial_id);
  write_record(*db_, claim.trial_id, partial);
  SQLite::Statement update(*db_, R"SQL(UPDATE trials SET status = ?, error = ?, finished_at = ?, lease_until = NULL
    WHERE id = ?)SQL");
  update.bind(1, status);
  update.bind(2, reason);
  update.bind(3, now_utc());
  update.bind(4, static_cast<int64_t>(claim.trial_id));
  update.exec();
  tx.commit();
  return true;
}

bool ResultStore::release(const Claim& claim, const std::string& worker) {
  SQLite::Statement update(*db_, R"SQL(UPDATE trials SET status = 'pending', claimed_by = NULL, lease_until = NULL
    WHERE id = ? AND claimed_by = ? AND attempt = ? AND status = 'running')SQL");
  update.bind(1, static_cast<int64_t>(claim.trial_id));
  update.bind(2, worker);
  update.bind(3, claim.attempt);
  return update.exec() == 1;
}

int ResultStore::reap(const ClaimPolicy& policy, const std::function<bool(const std::string&)>& owner_alive) {
  SQLite::Transaction tx(*db_, SQLite::TransactionBehavior::IMMEDIATE);
  expire_dead_owners(*db_, owner_alive);
  SQLite::Statement update(*db_, R"SQL(UPDATE trials SET status = 'failed', finished_at = :t,
    error = 'lost: its worker (' || coalesce(claimed_by, '?') || ') stopped heartbeating, and ' || takeovers ||
            ' workers before it'
    WHERE id IN (SELECT id FROM wanted) AND status = 'running' AND takeovers >= :takeovers
      AND (lease_until IS NULL OR lease_until < :now))SQL");
  update.bind(":t", now_utc());
  update.bind(":takeovers", policy.max_takeovers);
  update.bind(":now", unix_now());
  const int n = update.exec();
  tx.commit();
  return n;
}

std::map<std::string, int> ResultStore::wanted_status() {
  std::map<std::string, int> counts{{"pending", 0}, {"running", 0}, {"done", 0}, {"failed", 0}, {"pruned", 0}};
  SQLite::Statement q(*db_, "SELECT t.status, count(*) FROM trials t JOIN wanted w ON w.id = t.id GROUP BY t.status");
  while (q.executeStep()) counts[q.getColumn(0).getString()] = q.getColumn(1).getInt();
  return counts;
}

void ResultStore::reset_trial(std::int64_t trial_id) {
  SQLite::Transaction tx(*db_, SQLite::TransactionBehavior::IMMEDIATE);
  SQLite::Statement keep(*db_, R"SQL(INSERT OR REPLACE INTO superseded_metrics (trial_id, run_id, name, step, value)
    SELECT m.trial_id, t.run_id, m.name, m.step, m.value FROM metrics m JOIN trials t ON t.id = m.trial_id
    WHERE t.id = ? AND t.status = 'done')SQL");
  keep.bind(1, static_cast<int64_t>(trial_id));
  keep.exec();
  SQLite::Statement update(*db_, R"SQL(UPDATE trials SET status = 'pending', failures = 0, takeovers = 0,
    claimed_by = NULL, lease_until = NULL WHERE id = ? AND status != 'running')SQL");
  update.bind(1, static_cast<int64_t>(trial_id));
  update.exec();
  tx.commit();
}

Provenance ResultStore::provenance(std::int64_t trial_id) {
  SQLite::Statement q(*db_, "SELECT plugin_version, plugin_build, attnlab_build FROM trials WHERE id = ?");
  q.bind(1, static_cast<int64_t>(trial_id));
  Provenance p;
  if (q.executeStep()) {
    auto text = [&](int i) { return q.getColumn(i).isNull() ? std::string() : q.getColumn(i).getString(); };
    p = {text(0), text(1), text(2)};
  }
  return p;
}

void ResultStore::fail_trial(std::int64_t trial_id, const std::string& error, const TrialRecord& partial) {
  SQLite::Transaction tx(*db_, SQLite::TransactionBehavior::IMMEDIATE);
  clear_results(*db_, trial_id);
  write_record(*db_, trial_id, partial);
  SQLite::Statement update(*db_, "UPDATE trials SET status = 'failed', error = ?, finished_at = ? WHERE id = ?");
  update.bind(1, error);
  update.bind(2, now_utc());
  update.bind(3, static_cast<int64_t>(trial_id));
  update.exec();
  tx.commit();
}

ResultStore::Table ResultStore::query(const std::string& sql, const std::vector<std::string>& params) {
  SQLite::Statement statement(*db_, sql);
  for (std::size_t i = 0; i < params.size(); ++i) statement.bind(static_cast<int>(i + 1), params[i]);
  Table table;
  for (int i = 0; i < statement.getColumnCount(); ++i) table.columns.push_back(statement.getColumnName(i));
  while (statement.executeStep()) {
    std::vector<std::optional<std::string>> row;
    for (int i = 0; i < statement.getColumnCount(); ++i) {
      const auto column = statement.getColumn(i);
      if (column.isNull()) row.emplace_back(std::nullopt);
      else row.emplace_back(column.getString());
    }
    table.rows.push_back(std::move(row));
  }
  return table;
}

}  // namespace attnlab
