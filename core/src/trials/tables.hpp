#pragma once
// What the results database shows of each trial kind: the columns it adds to trial_summary,
// its own views, the summary table that `attnlab trials` and the end of `attnlab run` print,
// and its closing findings. No LibTorch here: bin/attnlab links this (`attnlab trials` and
// `attnlab metrics` start without loading LibTorch). Running and reporting a kind is its other
// half (trials/kind.hpp); each kind's half of this is trials/<kind>/tables.cpp.
#include "runtime/store.hpp"

#include <string>
#include <utility>
#include <vector>

namespace attnlab::trials {

struct View {
  std::string name;
  std::string what;  // one line for docs/RESULTS.md
  std::string sql;   // "CREATE VIEW <name> AS ..."
};

class KindTables {
 public:
  virtual ~KindTables() = default;
  virtual std::string name() const = 0;
  // What the kind adds to trial_summary (one row per trial of every kind, over `trials t`):
  // "<expression> AS <column>" each. Default: nothing.
  virtual std::vector<std::string> trial_summary_columns() const { return {}; }
  // Its own views, over its own trials only. Default: none.
  virtual std::vector<View> views() const { return {}; }
  // The summary table of the sweep bound to ?1, or of every sweep of this kind when ?1 is ''.
  virtual std::string summary_sql() const = 0;
  // What a finished sweep found, in words, printed after its summary ("": nothing to say).
  virtual std::string findings(ResultStore& store, const std::string& sweep) const { return ""; }
};

// The kind of that name; throws std::invalid_argument listing the known ones.
const KindTables& kind_tables(const std::string& name);
// The built-in kinds (trials/kinds.def), then those registered, in that order.
std::vector<const KindTables*> all_kind_tables();
// A kind outside kinds.def (a test's, an out-of-tree one); `tables` must outlive every use.
// register_trial_kind (trials/kind.hpp) calls this.
void register_kind_tables(const KindTables& tables);

// trial_summary and every kind's views, in the order they are made (docs/RESULTS.md lists them).
std::vector<View> kind_views();
// Drops those views and makes them again, in one transaction, so that a database always has
// the current columns. Whatever opens a database for writing calls this after opening it:
// the runner, `attnlab merge`, `attnlab metrics` (the store itself, a lower layer, makes only
// its tables and the long-format views).
void define_views(ResultStore& store);

// The summary table of `sweep` (of its kind); with `sweep` empty, one per kind that has sweeps
// in the database, in kind order. Throws std::invalid_argument for an unknown sweep.
std::vector<std::pair<std::string, ResultStore::Table>> summaries(ResultStore& store, const std::string& sweep);

// Helpers for the kinds' SQL.
// The final value (step = -1) of `metric` of trial t, as the column `column`.
std::string final_metric_column(const std::string& metric, const std::string& column);
// Every metric of `kind` declared with a summary column that is kept once per trial (not per
// evaluation length, no curve), as final_metric_column()s, in declaration order.
std::vector<std::string> trial_metric_columns(const std::string& kind);
// A column printed with printf's `format`, NULL kept NULL (SQLite's printf turns NULL into 0).
std::string printed(const std::string& column, const std::string& format, const std::string& alias);
// A summary view's column printed in its metric's declared format (base/metrics.cpp).
std::string declared(const std::string& kind, const std::string& column, const std::string& alias);

// One row of a query result, its cells read by column name (throws std::logic_error for a
// column the query does not have).
class NamedRow {
 public:
  NamedRow(const ResultStore::Table& table, std::size_t row) : table_(table), row_(row) {}
  const std::optional<std::string>& operator[](const std::string& column) const;
  double number(const std::string& column) const;  // NaN when NULL

 private:
  const ResultStore::Table& table_;
  std::size_t row_;
};

}  // namespace attnlab::trials
