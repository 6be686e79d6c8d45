#include "trials/tables.hpp"

#include "base/metrics.hpp"

#include <SQLiteCpp/SQLiteCpp.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace attnlab::trials {

#define ATTNLAB_TRIAL_KIND(name) const KindTables& name##_tables();
#include "trials/kinds.def"
#undef ATTNLAB_TRIAL_KIND

namespace {

std::vector<const KindTables*>& registered() {
  static std::vector<const KindTables*> list = {
#define ATTNLAB_TRIAL_KIND(name) &name##_tables(),
#include "trials/kinds.def"
#undef ATTNLAB_TRIAL_KIND
  };
  return list;
}

// One row per trial of every kind: what every trial has, then what each kind adds.
View trial_summary() {
  std::string sql = R"SQL(CREATE VIEW trial_summary AS
SELECT t.id AS trial_id, s.name AS sweep, s.kind AS kind, t.name AS trial, t.backend, t.status)SQL";
  std::string adding;
  for (const auto* kind : registered()) {
    for (const auto& column : kind->trial_summary_columns()) sql += ",\n  " + column;
    if (!kind->trial_summary_columns().empty()) adding += (adding.empty() ? "" : ", ") + kind->name();
  }
  sql += ",\n  t.error\nFROM trials t JOIN sweeps s ON s.id = t.sweep_id";
  return {"trial_summary",
          "one row per trial (every kind): sweep, kind, backend, status, error, and the axes and headline metrics "
          "that its kind adds (kinds adding columns: " + adding + ")",
          sql};
}

}  // namespace

const KindTables& kind_tables(const std::string& name) {
  std::string known;
  for (const auto* kind : registered()) {
    if (kind->name() == name) return *kind;
    known += (known.empty() ? "" : "|") + kind->name();
  }
  throw std::invalid_argument("unknown trial kind '" + name + "' (known: " + known + ")");
}

std::vector<const KindTables*> all_kind_tables() { return registered(); }

void register_kind_tables(const KindTables& tables) {
  auto& list = registered();
  for (const auto* kind : list)
    if (kind->name() == tables.name()) throw std::logic_error("trial kind '" + tables.name() + "' registered twice");
  list.push_back(&tables);
}

std::vector<View> kind_views() {
  std::vector<View> views = {trial_summary()};
  for (const auto* kind : registered())
    for (auto& view : kind->views()) views.push_back(std::move(view));
  return views;
}

void define_views(ResultStore& store) {
  const auto views = kind_views();
  SQLite::Transaction tx(store.db(), SQLite::TransactionBehavior::IMMEDIATE);
  for (auto it = views.rbegin(); it != views.rend(); ++it) store.db().exec("DROP VIEW IF EXISTS " + it->name);
  for (const auto& view : views) store.db().exec(view.sql);
  tx.commit();
}

std::vector<std::pair<std::string, ResultStore::Table>> summaries(ResultStore& store, const std::string& sweep) {
  std::vector<std::pair<std::string, ResultStore::Table>> out;
  if (!sweep.empty()) {
    const auto found = store.query("SELECT kind FROM sweeps WHERE name = ?1", {sweep});
    if (found.rows.empty()) throw std::invalid_argument("no sweep named '" + sweep + "' in " + store.db().getFilename());
    const KindTables& kind = kind_tables(found.rows[0][0].value_or(""));
    out.emplace_back(kind.name(), store.query(kind.summary_sql(), {sweep}));
    return out;
  }
  const auto present = store.query("SELECT DISTINCT kind FROM sweeps");
  for (const auto* kind : registered()) {
    const bool has = std::any_of(present.rows.begin(), present.rows.end(),
                                 [&](const auto& row) { return row[0] == kind->name(); });
    if (has) out.emplace_back(kind->name(), store.query(kind->summary_sql(), {""}));
  }
  return out;
}

std::string final_metric_column(const std::string& metric, const std::string& column) {
  return "(SELECT value FROM metrics m WHERE m.trial_id = t.id AND m.name = '" + metric + "' AND m.step = -1) AS " +
         column;
}

std::vector<std::string> trial_metric_columns(const std::string& kind) {
  std::vector<std::string> columns;
  for (const auto& m : metrics::all())
    if (m.kind == kind && *m.column && m.eval_field().empty() && !m.has(metrics::kCurve))
      columns.push_back(final_metric_column(m.pattern, m.column));
  return columns;
}

std::string printed(const std::string& column, const std::string& format, const std::string& alias) {
  return "CASE WHEN " + column + " IS NULL THEN NULL ELSE printf('" + format + "', " + column + ") END AS " + alias;
}

std::string declared(const std::string& kind, const std::string& column, const std::string& alias) {
  const metrics::Metric* m = metrics::by_column(kind, column);
  if (!m) throw std::logic_error("no metric of kind " + kind + " has the summary column " + column);
  return printed(column, m->format, alias);
}

const std::optional<std::string>& NamedRow::operator[](const std::string& column) const {
  const auto& columns = table_.columns;
  const auto at = std::find(columns.begin(), columns.end(), column);
  if (at == columns.end()) throw std::logic_error("the query has no column '" + column + "'");
  return table_.rows.at(row_)[static_cast<std::size_t>(at - columns.begin())];
}

double NamedRow::number(const std::string& column) const {
  const auto& cell = (*this)[column];
  return cell ? std::stod(*cell) : std::nan("");
}

}  // namespace attnlab::trials
