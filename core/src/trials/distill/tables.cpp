// What the database shows of distill trials: the views distill_summary (one row per trial and
// evaluation length) and distill_methods (seeds aggregated), the table `attnlab trials` prints of
// a distill sweep, and what `attnlab run` says the sweep found, with a sample pair.
#include "trials/tables.hpp"

#include "base/metrics.hpp"
#include "base/text.hpp"

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

namespace attnlab::trials {
namespace {

// The closing verdict, declared once: a sparse student pays when it computes under
// kSparseTileShare of the causal layout's tiles with the upper bound of its perplexity interval
// within kPerplexityBudget of the teacher's.
constexpr double kSparseTileShare = 0.9;
// Recall, where the sweep has the task: kept = the interval's upper bound within kRecallKept of
// the teacher's recall; blind = its upper bound below chance + kRecallBlind.
constexpr double kRecallKept = 0.05, kRecallBlind = 0.10;
constexpr double kPerplexityBudget = 0.03;

std::string text(const char* format, double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, format, value);
  return buffer;
}

// The eval/T<T>/<field> columns of distill_summary: the kind's metrics declared with a summary
// column, the plain ones first (as recorded), then the deployed ones (hard_ first), each with
// its _lo and _hi bounds where it has an interval.
std::string eval_columns(const std::string& kind) {
  std::string sql;
  for (const bool deployed : {false, true})
    for (const auto& m : metrics::all()) {
      if (m.kind != kind || !*m.column || m.eval_field().empty() || m.has(metrics::kCurve) ||
          m.has(metrics::kDeployed) != deployed)
        continue;
      std::vector<std::string> fields = {m.eval_field()};
      if (m.has(metrics::kInterval)) fields = {fields[0], fields[0] + "_lo", fields[0] + "_hi"};
      for (const auto& f : fields)
        sql += ",\n  " + (deployed ? metrics::deployed_sql(f) : "MAX(CASE WHEN ev.field = '" + f + "' THEN ev.value END)") +
               " AS " + f;
    }
  return sql;
}

// One row per (trial, evaluation length) of distill sweeps, the student as it is deployed (hard
// mode where it has one: hard = 1), with the 95% bootstrap bounds (_lo, _hi) of its figures.
View summary_view(const std::string& kind) {
  std::string sql = R"SQL(CREATE VIEW distill_summary AS
WITH ev AS (
  SELECT m.trial_id,
    CAST(substr(m.name, 7, instr(substr(m.name, 7), '/') - 1) AS INTEGER) AS eval_len,
    substr(m.name, 7 + instr(substr(m.name, 7), '/')) AS field, m.value
  FROM metrics m WHERE m.name LIKE 'eval/T%/%' AND m.step = -1)
SELECT t.id AS trial_id, s.name AS sweep, t.backend, t.status, ev.eval_len,
  CAST((SELECT value FROM params p WHERE p.trial_id = t.id AND p.name = 'seed') AS INTEGER) AS seed,
  MAX(CASE WHEN ev.field = ')SQL" + metrics::hard("student_ppl") + "' THEN 1 ELSE 0 END) AS hard";
  sql += eval_columns(kind);
  for (const auto& column : trial_metric_columns(kind)) sql += ",\n  " + column;
  sql += R"SQL(,
  t.name AS trial, t.error
FROM trials t JOIN sweeps s ON s.id = t.sweep_id LEFT JOIN ev ON ev.trial_id = t.id
WHERE s.kind = ')SQL" + kind + R"SQL('
GROUP BY t.id, ev.eval_len)SQL";
  return {"distill_summary",
          "one row per (distill trial, eval length): the distill metrics declared with a column, the student as "
          "deployed (`hard` = 1: hard-mode values where recorded), 95% bounds as `_lo`/`_hi`",
          sql};
}

// Seeds aggregated: one row per (sweep, method, evaluation length) of finished trials (a
// method: metrics::method_sql).
View methods_view() {
  return {"distill_methods",
          "seeds aggregated: one row per (sweep, method = every parameter but `seed`, eval length) of finished "
          "trials: mean/min/max relative Δppl, mean Δppl, KL, agreement, causal fraction, speedups, bits/byte, recall "
          "(mean/min/max, the lowest 95% lower bound and the highest upper bound over the seeds)",
          R"SQL(CREATE VIEW distill_methods AS
WITH keyed AS (
  SELECT d.*, )SQL" + metrics::method_sql("d.trial_id") + R"SQL( AS method
  FROM distill_summary d WHERE d.status = 'done' AND d.eval_len IS NOT NULL)
SELECT sweep, backend, method, eval_len, COUNT(*) AS seeds,
  AVG(rel_delta_ppl) AS rel_delta_ppl, MIN(rel_delta_ppl) AS rel_delta_ppl_min, MAX(rel_delta_ppl) AS rel_delta_ppl_max,
  AVG(delta_ppl) AS delta_ppl, AVG(kl) AS kl, AVG(agreement) AS agreement,
  AVG(causal_fraction) AS causal_fraction, MIN(causal_fraction) AS causal_fraction_min,
  MAX(causal_fraction) AS causal_fraction_max,
  AVG(speedup) AS speedup, MIN(speedup) AS speedup_min, MAX(speedup) AS speedup_max,
  AVG(attention_speedup) AS attention_speedup, AVG(student_bpb) AS student_bpb,
  AVG(recall_acc) AS recall_acc, MIN(recall_acc) AS recall_acc_min, MAX(recall_acc) AS recall_acc_max,
  MIN(recall_acc_lo) AS recall_acc_lo_min, MAX(recall_acc_hi) AS recall_acc_hi_max, AVG(recall_chance) AS recall_chance,
  MIN(trial) AS first_trial
FROM keyed GROUP BY sweep, method, eval_len)SQL"};
}

// One finished student at the longest evaluation length, in words.
std::string student_finding(const NamedRow& r) {
  const std::string execution = r["execution"].value_or("");
  const double fraction = r.number("causal_fraction"), rel = r.number("rel_delta_ppl");
  std::string out = "  - " + r["trial"].value_or(r["backend"].value_or("?")) + " (" +
                    (r["hard"].value_or("0") == "1" ? "hard" : "soft") +
                    (execution == "block_sparse" ? ", on the block-sparse kernel"
                     : execution.empty()         ? ""
                                                 : ", execution " + execution) +
                    "): ";
  std::vector<std::string> parts;
  if (std::isfinite(fraction)) parts.push_back("computes " + text("%.0f%%", 100 * fraction) + " of the causal layout's tiles");
  if (std::isfinite(rel))
    parts.push_back("perplexity " + text("%+.2f%%", 100 * rel) + " [" + text("%+.2f", 100 * r.number("rel_delta_ppl_lo")) +
                    ", " + text("%+.2f", 100 * r.number("rel_delta_ppl_hi")) + "] vs the teacher");
  if (const double speed = r.number("speedup"); std::isfinite(speed))
    parts.push_back("end to end " + text("%.2fx", speed) + " the teacher's tokens/s (attention " +
                    text("%.2fx", r.number("attention_speedup")) + ")");
  if (r["recall_acc"])
    parts.push_back("recall " + text("%.3f", r.number("recall_acc")) + " [" + text("%.3f", r.number("recall_acc_lo")) +
                    ", " + text("%.3f", r.number("recall_acc_hi")) + "] (teacher " +
                    text("%.3f", r.number("teacher_recall_acc")) + ", chance " + text("%.3f", r.number("recall_chance")) + ")");
  return out + base::join(parts, "; ") + ".\n";
}

bool pays(const NamedRow& r) {
  const double fraction = r.number("causal_fraction"), hi = r.number("rel_delta_ppl_hi");
  return r["backend"] != "dense" && std::isfinite(fraction) && fraction < kSparseTileShare && std::isfinite(hi) &&
         hi < kPerplexityBudget;
}

// Per finished student at the longest evaluation length with quality (not a cost-only one): the mode it is deployed in, how it
// runs, the fraction of the causal layout's tiles it computes, its perplexity change with the
// 95% interval, its speed against the teacher; then the verdict.
std::string found(ResultStore& store, const std::string& sweep) {
  const auto rows = store.query(
      "SELECT d.*, (SELECT value FROM params p WHERE p.trial_id = d.trial_id AND p.name = 'backend.execution') "
      "AS execution FROM distill_summary d WHERE d.sweep = ?1 AND d.status = 'done' AND d.eval_len = "
      "(SELECT MAX(eval_len) FROM distill_summary WHERE sweep = ?1 AND student_ppl IS NOT NULL) ORDER BY d.trial_id",
      {sweep});
  if (rows.rows.empty()) return "";
  std::string out = "What this sweep found at T = " + NamedRow(rows, 0)["eval_len"].value_or("?") +
                    " (the student as deployed; intervals are 95% bootstrap over the evaluated windows):\n";
  int paying = 0;
  std::vector<std::string> recalling, blind;
  for (std::size_t i = 0; i < rows.rows.size(); ++i) {
    const NamedRow r(rows, i);
    out += student_finding(r);
    paying += pays(r) ? 1 : 0;
    if (!r["recall_acc"] || r["backend"] == "dense" || !(r.number("causal_fraction") < kSparseTileShare)) continue;
    const std::string who = r["trial"].value_or("?") + " (" + text("%.0f%%", 100 * r.number("causal_fraction")) + " of the tiles)";
    if (r.number("recall_acc_hi") >= r.number("teacher_recall_acc") - kRecallKept) recalling.push_back(who);
    if (r.number("recall_acc_hi") < r.number("recall_chance") + kRecallBlind) blind.push_back(who);
  }
  const std::string where = "under " + text("%.0f%%", 100 * kSparseTileShare) + " of the causal tiles within " +
                            text("%.0f%%", 100 * kPerplexityBudget) + " of the teacher's perplexity";
  out += paying > 0 ? "  " + std::to_string(paying) + " learned or fixed sparse student(s) compute " + where +
                          " (upper bound of the interval).\n"
                    : "  No sparse student computes " + where + ".\n";
  if (!recalling.empty())
    out += "  Long-range recall kept (interval reaching within " + text("%.2f", kRecallKept) +
           " of the teacher's) by sparse student(s): " + base::join(recalling, ", ") + ".\n";
  if (!blind.empty())
    out += "  At chance on recall (interval below chance + " + text("%.2f", kRecallBlind) + "): " + base::join(blind, ", ") + ".\n";
  return out;
}

// One teacher/student pair of generations (sampled, first prompt) of the sweep's first finished
// student that is not the dense control.
std::string sample_pair(ResultStore& store, const std::string& sweep) {
  const auto pair = store.query(
      "SELECT t.backend, s.who, s.prompt, s.text FROM samples s JOIN trials t ON t.id = s.trial_id "
      "JOIN sweeps w ON w.id = t.sweep_id WHERE w.name = ?1 AND s.mode = 'sampled' "
      "AND t.id = (SELECT t2.id FROM trials t2 JOIN samples s2 ON s2.trial_id = t2.id WHERE t2.sweep_id = w.id "
      "AND t2.backend != 'dense' AND t2.status = 'done' ORDER BY t2.ordinal LIMIT 1) "
      "AND s.prompt = (SELECT MIN(prompt) FROM samples WHERE trial_id = t.id) ORDER BY s.who DESC",
      {sweep});
  if (pair.rows.empty()) return "";
  // Sampled, not greedy: greedy decoding of a model this small loops ("of the state of the state").
  std::string out = "\nsamples (sampled at the sweep's temperature; greedy ones are in the report), teacher then student:\n";
  for (const auto& row : pair.rows)
    out += "  [" + row[1].value_or("") + ", " + row[0].value_or("") + "] " + row[2].value_or("") + " -> " +
           row[3].value_or("") + "\n";
  return out;
}

class DistillTables final : public KindTables {
 public:
  std::string name() const override { return "distill"; }

  std::vector<View> views() const override { return {summary_view(name()), methods_view()}; }

  std::string summary_sql() const override {
    const std::string k = name(), d = metrics::by_column(k, "delta_ppl")->format;
    return "SELECT backend, eval_len AS T, status, CASE WHEN hard = 1 THEN 'hard' ELSE 'soft' END AS mode, " +
           declared(k, "teacher_ppl", "teacher_ppl") + ", " + declared(k, "student_ppl", "student_ppl") + ", " +
           "CASE WHEN delta_ppl IS NULL THEN NULL ELSE printf('" + d + " [" + d + ", " + d +
           "]', delta_ppl, delta_ppl_lo, delta_ppl_hi) END AS delta_ppl_95ci, " + declared(k, "kl", "kl") + ", " +
           declared(k, "agreement", "agree") + ", " + declared(k, "causal_fraction", "of_causal") + ", " +
           declared(k, "speedup", "speedup") + ", " +
           "CASE WHEN recall_acc IS NULL THEN NULL ELSE printf('%.3f [%.3f, %.3f]', recall_acc, recall_acc_lo, "
           "recall_acc_hi) END AS recall_95ci, " + declared(k, "teacher_recall_acc", "teacher_recall") + ", " +
           declared(k, "ms_per_step", "ms_per_step") +
           ", trial FROM distill_summary WHERE (?1 = '' OR sweep = ?1) ORDER BY trial_id, eval_len";
  }

  // The findings, then a sample pair (each only where there is something to say).
  std::string findings(ResultStore& store, const std::string& sweep) const override {
    return found(store, sweep) + sample_pair(store, sweep);
  }
};

}  // namespace

const KindTables& distill_tables() {
  static const DistillTables tables;
  return tables;
}

}  // namespace attnlab::trials
