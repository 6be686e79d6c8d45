#pragma once
// ResultStore: every number attnlab measures, in one SQLite file (schema in store.cpp,
// documented in docs/RESULTS.md). WAL journal, busy timeout, and one transaction per
// logical write, so a crash never leaves a trial half-recorded: a trial's metrics, samples
// and status land together or not at all.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace SQLite {
class Database;
}

namespace attnlab {

inline constexpr int kSchemaVersion = 1;

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

class ResultStore {
 public:
  // Opens (creating the file and schema if needed) read-write; read_only opens an existing
  // file for queries and never creates or migrates it.
  explicit ResultStore(const std::string& path, bool read_only = false);
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

  // Marks running (clearing anything an earlier attempt left), in its own transaction.
  void start_trial(std::int64_t trial_id, std::int64_t run_id);
  // Writes everything and marks done, atomically.
  void finish_trial(std::int64_t trial_id, const TrialRecord& record);
  // Marks failed with the error text, keeping whatever metrics are passed (may be empty).
  void fail_trial(std::int64_t trial_id, const std::string& error, const TrialRecord& partial = {});

  // Runs SQL and returns column names + rows as strings (NULL -> empty, `null_is_empty`).
  struct Table {
    std::vector<std::string> columns;
    std::vector<std::vector<std::optional<std::string>>> rows;
  };
  Table query(const std::string& sql);

  SQLite::Database& db();

 private:
  void create_schema();
  std::unique_ptr<SQLite::Database> db_;
};

}  // namespace attnlab
