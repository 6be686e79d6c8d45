// A trial kind is a vertical: a kind defined only here, registered at run time, gets its own
// trial_summary column, view, summary table, findings, report section and compare table, and
// none of another kind's; the built-in kinds keep theirs beside it. define_views replaces
// whatever views an older attnlab left.
#include "runtime/store.hpp"
#include "trials/kind.hpp"
#include "trials/report.hpp"
#include "trials/tables.hpp"

#include <SQLiteCpp/SQLiteCpp.h>

#include "catch.hpp"

#include "support.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

using namespace attnlab;

namespace {

// "tiny": each trial records one number, tiny/score.
class TinyTables final : public trials::KindTables {
 public:
  std::string name() const override { return "tiny"; }
  std::vector<std::string> trial_summary_columns() const override {
    return {trials::final_metric_column("tiny/score", "tiny_score")};
  }
  std::vector<trials::View> views() const override {
    return {{"tiny_scores", "one row per tiny trial",
             "CREATE VIEW tiny_scores AS SELECT trial, tiny_score FROM trial_summary WHERE kind = 'tiny'"}};
  }
  std::string summary_sql() const override {
    return "SELECT trial, tiny_score AS score FROM trial_summary WHERE kind = 'tiny' AND (?1 = '' OR sweep = ?1) "
           "ORDER BY trial_id";
  }
  std::string findings(ResultStore& store, const std::string& sweep) const override {
    const auto best = store.query("SELECT MAX(score) FROM (" + summary_sql() + ")", {sweep});
    return "tiny found a best score of " + best.rows[0][0].value_or("?") + "\n";
  }
};

class TinyKind final : public trials::TrialKind {
 public:
  const trials::KindTables& tables() const override { return tables_; }
  KindSchema schema() const override {
    KindSchema s;
    s.name = "tiny";
    return s;
  }
  bool measures_time() const override { return false; }
  void run(const trials::TrialEnv&, TrialSink& sink) const override { sink.metric("tiny/score", 1.0); }
  void report(report::Page& page) const override {
    page.doc.heading(2, "Tiny scores");
    std::vector<std::vector<std::string>> rows;
    for (const auto& t : page.sweep.trials) rows.push_back({t.name, report::format_number("%.1f", t.final_metric("tiny/score"))});
    page.doc.table({"trial", "score"}, std::move(rows));
  }
  ResultStore::Table compare(const report::SweepData& sweep, const report::BaselineSpec&) const override {
    ResultStore::Table table;
    table.columns = {"trial", "score"};
    for (const auto& t : sweep.trials) table.rows.push_back({t.name, std::to_string(*t.final_metric("tiny/score"))});
    return table;
  }

 private:
  TinyTables tables_;
};

const TinyKind& tiny() {
  static const TinyKind kind;
  static const bool registered = (trials::register_trial_kind(kind), true);
  (void)registered;
  return kind;
}

// A database with a tiny sweep (scores 2.5 and 4.5) and a bench sweep of one trial.
std::string tiny_database() {
  tiny();
  const auto dir = test::fresh_dir("kinds");
  const std::string db = (dir / "r.sqlite").string();
  ResultStore store(db);
  trials::define_views(store);
  const auto run = store.begin_run({}, "test");
  const auto sweep = store.upsert_sweep("tiny-sweep", "tiny", "tiny.toml", "");
  for (int i = 0; i < 2; ++i) {
    const auto id = store.ensure_trial(sweep, "t" + std::to_string(i), "tiny/" + std::to_string(i), "dense", i,
                                       {{"grid", {{"backend", "dense"}, {"i", i}}}}).first;
    store.start_trial(id, run);
    store.finish_trial(id, TrialRecord{{{"tiny/score", -1, 2.5 + 2 * i}}, {}, {}});
  }
  const auto bench = store.upsert_sweep("bench-sweep", "bench", "bench.toml", "");
  const auto id = store.ensure_trial(bench, "b0", "dense/seq_len:8", "dense", 0,
                                     {{"grid", {{"backend", "dense"}, {"seq_len", 8}, {"pass", "fwd"}}}}).first;
  store.start_trial(id, run);
  store.finish_trial(id, TrialRecord{{{"time/median_ms", -1, 1.5}, {"time/cv", -1, 0.01}}, {}, {}});
  return db;
}

}  // namespace

TEST_CASE("a kind registered at run time has its views, summary and findings, and no other kind's", "[kinds]") {
  const std::string db = tiny_database();
  ResultStore store(db, /*read_only=*/true);
  CHECK(store.query("SELECT tiny_score FROM trial_summary WHERE trial = 'tiny/1'").rows[0][0] == "4.5");
  CHECK(store.query("SELECT COUNT(*) FROM tiny_scores").rows[0][0] == "2");

  const auto one = trials::summaries(store, "tiny-sweep");
  REQUIRE(one.size() == 1);
  CHECK(one[0].first == "tiny");
  CHECK(one[0].second.columns == std::vector<std::string>{"trial", "score"});
  CHECK(one[0].second.rows.size() == 2);

  // Every sweep: one table per kind, each listing only its own kind's trials.
  const auto every = trials::summaries(store, "");
  REQUIRE(every.size() == 2);
  CHECK(every[0].first == "bench");
  CHECK(every[0].second.rows.size() == 1);
  CHECK(std::find(every[0].second.columns.begin(), every[0].second.columns.end(), "score") == every[0].second.columns.end());
  CHECK(every[1].first == "tiny");
  CHECK(every[1].second.rows.size() == 2);

  CHECK(trials::kind_tables("tiny").findings(store, "tiny-sweep") == "tiny found a best score of 4.5\n");
  CHECK(trials::kind_tables("bench").findings(store, "bench-sweep").empty());
  CHECK_THROWS_WITH(trials::register_trial_kind(tiny()), Catch::Contains("registered twice"));
  for (const auto& name : trials::trial_kind_names()) CHECK(trials::trial_kind(name).schema().name == name);
  CHECK_THROWS_WITH(trials::kind_tables("huge"), Catch::Contains("known: bench|distill|tiny"));
}

TEST_CASE("a kind registered at run time writes its own report section and compare table", "[kinds]") {
  const std::string db = tiny_database();
  ResultStore store(db, /*read_only=*/true);
  report::ReportOptions options;
  options.sweep = "tiny-sweep";
  options.out = std::filesystem::path(db).parent_path() / "report";
  options.plots = false;
  const auto files = trials::write_report(store, options);
  std::stringstream page;
  page << std::ifstream(files.markdown).rdbuf();
  INFO(page.str());
  CHECK(page.str().find("## Tiny scores") != std::string::npos);
  CHECK(page.str().find("| tiny/1 | 4.5 |") != std::string::npos);
  CHECK(page.str().find("## Run context") != std::string::npos);  // the sections every kind shares
  CHECK(page.str().find("## Results") == std::string::npos);      // the built-in kinds' sections
  CHECK(page.str().find("median") == std::string::npos);
  CHECK(page.str().find("Evaluation at T") == std::string::npos);

  const auto table = trials::compare_table(report::load_sweep_data(store, "tiny-sweep"), report::parse_baseline("dense"));
  CHECK(table.columns == std::vector<std::string>{"trial", "score"});
  REQUIRE(table.rows.size() == 2);
  CHECK(table.rows[1][1] == "4.500000");
}

TEST_CASE("define_views drops a view an older attnlab made and makes the current one", "[kinds]") {
  const auto dir = test::fresh_dir("kinds_stale");
  ResultStore store((dir / "r.sqlite").string());
  store.db().exec("CREATE VIEW distill_summary AS SELECT 1 AS stale_column");
  trials::define_views(store);
  auto has = [&](const std::string& column) {
    return store.query("SELECT COUNT(*) FROM pragma_table_info('distill_summary') WHERE name = ?1", {column}).rows[0][0] ==
           "1";
  };
  CHECK_FALSE(has("stale_column"));
  CHECK(has("eval_len"));
  CHECK(has("rel_delta_ppl_hi"));
}
