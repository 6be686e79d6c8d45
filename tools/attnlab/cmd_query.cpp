// attnlab query "SQL"       any read-only SQL against the results database
// attnlab trials            the per-trial summary of a sweep (or of every sweep)
#include "commands.hpp"
#include "table.hpp"

#include "base/metrics.hpp"

#include <SQLiteCpp/SQLiteCpp.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>

namespace attnlab::cli {

// One teacher/student pair of generations (greedy, first prompt) of a distill sweep: the
// side-by-side sample `attnlab run` ends with. The sweep's name is bound to ?1.
std::string sample_pair_sql() {
  return "SELECT t.backend, s.who, s.prompt, s.text FROM samples s JOIN trials t ON t.id = s.trial_id "
         "JOIN sweeps w ON w.id = t.sweep_id WHERE w.name = ?1 AND s.mode = 'greedy' "
         "AND t.id = (SELECT t2.id FROM trials t2 JOIN samples s2 ON s2.trial_id = t2.id WHERE t2.sweep_id = w.id "
         "AND t2.backend != 'dense' AND t2.status = 'done' ORDER BY t2.ordinal LIMIT 1) "
         "AND s.prompt = (SELECT MIN(prompt) FROM samples WHERE trial_id = t.id) ORDER BY s.who DESC";
}

// What a distill sweep found, in words: per finished student at the longest evaluation length,
// the mode it is deployed in, how it runs, the fraction of the causal layout's tiles it
// computes, its perplexity change with the 95% interval, and its speed against the teacher.
std::string distill_findings(ResultStore& store, const std::string& sweep) {
  const auto rows = store.query(
      "SELECT d.backend, d.eval_len, d.hard, d.causal_fraction, d.rel_delta_ppl, d.rel_delta_ppl_lo, "
      "d.rel_delta_ppl_hi, d.speedup, d.attention_speedup, "
      "(SELECT value FROM params p WHERE p.trial_id = d.trial_id AND p.name = 'backend.execution'), d.trial, "
      "d.recall_acc, d.recall_acc_lo, d.recall_acc_hi, d.teacher_recall_acc, d.recall_chance "
      "FROM distill_summary d WHERE d.sweep = ?1 AND d.status = 'done' AND d.eval_len = "
      "(SELECT MAX(eval_len) FROM distill_summary WHERE sweep = ?1) ORDER BY d.trial_id",
      {sweep});
  if (rows.rows.empty()) return "";
  auto num = [](const std::optional<std::string>& v) { return v ? std::stod(*v) : std::nan(""); };
  auto text = [](const char* format, double v) {
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, format, v);
    return std::string(buffer);
  };
  std::string out = "What this sweep found at T = " + rows.rows.front()[1].value_or("?") +
                    " (the student as deployed; intervals are 95% bootstrap over the evaluated windows):\n";
  int sparse_within = 0;
  for (const auto& r : rows.rows) {
    const std::string backend = r[0].value_or("?"), execution = r[9].value_or("");
    const double fraction = num(r[3]), rel = num(r[4]), lo = num(r[5]), hi = num(r[6]), speed = num(r[7]),
                 attention = num(r[8]);
    const bool kernel = execution == "block_sparse";
    out += "  - " + r[10].value_or(backend) + " (" + (r[2].value_or("0") == "1" ? "hard" : "soft") +
           (kernel ? ", on the block-sparse kernel" : execution.empty() ? "" : ", execution " + execution) + "): ";
    out += std::isfinite(fraction) ? "computes " + text("%.0f%%", 100 * fraction) + " of the causal layout's tiles; "
                                   : "";
    if (std::isfinite(rel))
      out += "perplexity " + text("%+.2f%%", 100 * rel) + " [" + text("%+.2f", 100 * lo) + ", " + text("%+.2f", 100 * hi) +
             "] vs the teacher";
    if (std::isfinite(speed))
      out += "; end to end " + text("%.2fx", speed) + " the teacher's tokens/s (attention " + text("%.2fx", attention) + ")";
    if (r.size() > 15 && r[11])
      out += "; recall " + text("%.3f", num(r[11])) + " [" + text("%.3f", num(r[12])) + ", " + text("%.3f", num(r[13])) +
             "] (teacher " + text("%.3f", num(r[14])) + ", chance " + text("%.3f", num(r[15])) + ")";
    out += ".\n";
    if (backend != "dense" && std::isfinite(fraction) && fraction < 0.9 && std::isfinite(hi) && hi < 0.03)
      ++sparse_within;
  }
  out += sparse_within > 0
             ? "  " + std::to_string(sparse_within) +
                   " learned or fixed sparse student(s) compute under 90% of the causal tiles within 3% of the "
                   "teacher's perplexity (upper bound of the interval).\n"
             : "  No sparse student computes under 90% of the causal tiles within 3% of the teacher's perplexity.\n";
  return out;
}

// printf for display that keeps NULL as NULL (SQLite's printf turns NULL into 0).
std::string fmt(const std::string& column, const std::string& format, const std::string& alias) {
  return "CASE WHEN " + column + " IS NULL THEN NULL ELSE printf('" + format + "', " + column + ") END AS " + alias;
}

// A summary view's column printed in its metric's declared format (base/metrics.cpp).
std::string declared(const std::string& kind, const std::string& column, const std::string& alias) {
  const metrics::Metric* m = metrics::by_column(kind, column);
  if (!m) throw std::logic_error("no metric of kind " + kind + " has the summary column " + column);
  return fmt(column, m->format, alias);
}

// The table `attnlab run` ends with and `attnlab trials` prints: the sweep's name is bound to
// ?1 (every sweep when it is empty).
std::string summary_sql(const std::string& kind) {
  const std::string where = " WHERE (?1 = '' OR sweep = ?1)";
  if (kind == "distill") {
    const std::string d = metrics::by_column("distill", "delta_ppl")->format;
    return "SELECT backend, eval_len AS T, status, CASE WHEN hard = 1 THEN 'hard' ELSE 'soft' END AS mode, " +
           declared(kind, "teacher_ppl", "teacher_ppl") + ", " + declared(kind, "student_ppl", "student_ppl") + ", " +
           "CASE WHEN delta_ppl IS NULL THEN NULL ELSE printf('" + d + " [" + d + ", " + d +
           "]', delta_ppl, delta_ppl_lo, delta_ppl_hi) END AS delta_ppl_95ci, " + declared(kind, "kl", "kl") + ", " +
           declared(kind, "agreement", "agree") + ", " + declared(kind, "causal_fraction", "of_causal") + ", " +
           declared(kind, "speedup", "speedup") + ", " +
           "CASE WHEN recall_acc IS NULL THEN NULL ELSE printf('%.3f [%.3f, %.3f]', recall_acc, recall_acc_lo, "
           "recall_acc_hi) END AS recall_95ci, " + declared(kind, "teacher_recall_acc", "teacher_recall") + ", " +
           declared(kind, "ms_per_step", "ms_per_step") +
           ", trial FROM distill_summary" + where + " ORDER BY trial_id, eval_len";
  }
  const std::string b = "bench";
  return "SELECT sweep, backend, seq_len, pass, status, " + declared(b, "median_ms", "median_ms") + ", " +
         fmt("100 * cv", "%.1f%%", "spread") + ", CASE WHEN cv > 0.1 THEN 'noisy' ELSE '' END AS flag, " +
         declared(b, "peak_mib", "peak_mib") + ", " + declared(b, "gflops", "gflops") + ", " +
         declared(b, "block_density", "block_density") + ", trial FROM trial_summary" + where + " ORDER BY trial_id";
}

namespace {

struct QueryArgs {
  std::string db = default_db_path(), format = "table", sql, sweep;
};

}  // namespace

void setup_query_commands(CLI::App& root, int& exit_code) {
  auto args = std::make_shared<QueryArgs>();
  auto* query = root.add_subcommand("query", command_description("query"));
  query->add_option("sql", args->sql, "SQL, e.g. \"select * from trial_summary\"")->required();
  query->add_option("--db", args->db, "results database")->capture_default_str();
  query->add_option("--format", args->format, "output format")->check(CLI::IsMember({"table", "csv", "json"}))
      ->capture_default_str();
  query->callback([args, &exit_code] {
    if (!database_exists(args->db, exit_code)) return;
    try {
      ResultStore store(args->db, /*read_only=*/true);
      print_result(std::cout, store.query(args->sql), args->format);
    } catch (const SQLite::Exception& e) {
      std::cerr << "attnlab: query failed: " << e.what() << "\n";
      exit_code = 2;
    }
  });

  auto* trials = root.add_subcommand("trials", command_description("trials"));
  trials->add_option("--db", args->db, "results database")->capture_default_str();
  trials->add_option("--sweep", args->sweep, "only this sweep");
  trials->add_option("--format", args->format, "output format")->check(CLI::IsMember({"table", "csv", "json"}))
      ->capture_default_str();
  trials->callback([args, &exit_code] {
    if (!database_exists(args->db, exit_code)) return;
    ResultStore store(args->db, /*read_only=*/true);
    std::string kind = "bench";
    if (!args->sweep.empty()) {
      auto found = store.query("SELECT kind FROM sweeps WHERE name = ?1", {args->sweep});
      if (found.rows.empty()) {
        std::cerr << "attnlab: no sweep named '" << args->sweep << "' in " << args->db << "\n";
        exit_code = 1;
        return;
      }
      kind = found.rows[0][0].value_or("bench");
    }
    print_result(std::cout, store.query(summary_sql(kind), {args->sweep}), args->format);
  });
}

ATTNLAB_COMMAND(setup_query_commands);

}  // namespace attnlab::cli
