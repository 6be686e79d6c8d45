// What the database shows of bench trials: their axes and headline numbers in trial_summary,
// and the table `attnlab trials` prints of a bench sweep. No view of its own, no findings.
#include "trials/bench/thresholds.hpp"
#include "trials/tables.hpp"

#include <string>

namespace attnlab::trials {
namespace {

class BenchTables final : public KindTables {
 public:
  std::string name() const override { return "bench"; }

  std::vector<std::string> trial_summary_columns() const override {
    std::vector<std::string> columns = {
        // Numbers as numbers (params hold text): ORDER BY seq_len puts 256 before 1024.
        "CAST((SELECT value FROM params p WHERE p.trial_id = t.id AND p.name = 'seq_len') AS INTEGER) AS seq_len",
        "(SELECT value FROM params p WHERE p.trial_id = t.id AND p.name = 'pass') AS pass"};
    for (auto& column : trial_metric_columns(name())) columns.push_back(std::move(column));
    return columns;
  }

  std::string summary_sql() const override {
    const std::string b = name();
    return "SELECT sweep, backend, seq_len, pass, status, " + declared(b, "median_ms", "median_ms") + ", " +
           printed("100 * cv", "%.1f%%", "spread") + ", CASE WHEN cv > " + std::to_string(bench::kNoisyCv) +
           " THEN 'noisy' ELSE '' END AS flag, " +
           declared(b, "peak_mib", "peak_mib") + ", " + declared(b, "gflops", "gflops") + ", " +
           declared(b, "block_density", "block_density") + ", trial FROM trial_summary WHERE kind = '" + b +
           "' AND (?1 = '' OR sweep = ?1) ORDER BY trial_id";
  }
};

}  // namespace

const KindTables& bench_tables() {
  static const BenchTables tables;
  return tables;
}

}  // namespace attnlab::trials
