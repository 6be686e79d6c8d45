// The result store and the CLI around it, end to end with the real binary and real SQLite:
// a run records every trial, a rerun runs nothing, a bad sweep leaves the database as it was.
#include "base/metrics.hpp"
#include "runtime/store.hpp"
#include "trials/bench/measure.hpp"
#include "trials/tables.hpp"

#include <SQLiteCpp/SQLiteCpp.h>

#include "catch.hpp"

#include "support.hpp"

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

using namespace attnlab;
namespace fs = std::filesystem;

namespace {

using attnlab::test::cli;
using attnlab::test::file_bytes;
using attnlab::test::fresh_dir;
using attnlab::test::shell;

std::string sweep(const std::string& name) { return std::string(ATTNLAB_TEST_DATA) + "/sweeps/" + name; }

}  // namespace

TEST_CASE("store round trip: sweep, trial, metrics, samples, info", "[store]") {
  const auto dir = fresh_dir("store");
  const std::string db = (dir / "r.sqlite").string();
  {
    ResultStore store(db);
    trials::define_views(store);
    const auto run = store.begin_run({{"git_sha", "abc"}, {"threads", 2}, {"sgemm_gflops", 150.5}}, "attnlab run x");
    const auto sweep_id = store.upsert_sweep("s", "bench", "x.toml", "[sweep]");
    nlohmann::json config = {{"grid", {{"seq_len", 64}, {"pass", "fwd"}}}, {"backend_params", {{"tile", 64}}}};
    auto [id, status] = store.ensure_trial(sweep_id, "k1", "dense/seq_len:64", "dense", 0, config);
    REQUIRE(status == "pending");
    REQUIRE(store.ensure_trial(sweep_id, "k1", "dense/seq_len:64", "dense", 0, config).first == id);
    store.start_trial(id, run);
    TrialRecord record;
    record.metrics = {{"time/median_ms", -1, 1.25}, {"train/loss", 0, 3.0}, {"train/loss", 10, 2.0}};
    record.samples = {{"The", "teacher", "greedy", "The end"}};
    record.info = {{"teacher/sha256", "ff"}};
    store.finish_trial(id, record);
    store.finish_run(run);
  }
  ResultStore store(db, /*read_only=*/true);
  auto t = store.query("select status, backend from trials");
  REQUIRE(t.rows.size() == 1);
  REQUIRE(*t.rows[0][0] == "done");
  auto m = store.query("select value from metrics where name = 'train/loss' order by step");
  REQUIRE(m.rows.size() == 2);
  REQUIRE(std::stod(*m.rows[1][0]) == 2.0);
  REQUIRE(*store.query("select value from params where name = 'backend.tile'").rows[0][0] == "64");
  REQUIRE(*store.query("select seq_len from trial_summary").rows[0][0] == "64");
  REQUIRE(*store.query("select text from samples").rows[0][0] == "The end");
  REQUIRE(*store.query("select sgemm_gflops from runs").rows[0][0] == "150.5");
  REQUIRE(*store.query("select version from schema_info").rows[0][0] == "3");
}

TEST_CASE("a failed trial keeps its error and a rerun clears old numbers", "[store]") {
  const auto dir = fresh_dir("fail");
  ResultStore store((dir / "r.sqlite").string());
  const auto run = store.begin_run({}, "x");
  const auto sweep_id = store.upsert_sweep("s", "bench", "", "");
  auto [id, status] = store.ensure_trial(sweep_id, "k", "t", "dense", 0, nlohmann::json::object());
  store.start_trial(id, run);
  store.fail_trial(id, "boom: out of memory", {{{"time/median_ms", -1, 9.0}}, {}, {}});
  REQUIRE(*store.query("select status || ':' || error from trials").rows[0][0] == "failed:boom: out of memory");
  store.start_trial(id, run);
  REQUIRE(store.query("select * from metrics").rows.empty());
  REQUIRE(*store.query("select status from trials").rows[0][0] == "running");
}

TEST_CASE("attnlab run records every trial, a rerun runs nothing, --force reruns", "[store][cli]") {
  const auto dir = fresh_dir("resume");
  const std::string db = (dir / "r.sqlite").string();
  auto first = shell(cli() + " run --no-progress " + sweep("good.toml") + " --db " + db);
  REQUIRE(first.status == 0);
  REQUIRE_THAT(first.out, Catch::Contains("dense"));
  auto count = shell(cli() + " query --db " + db + " --format csv \"select count(*) as n from trials where status='done'\"");
  REQUIRE(count.status == 0);
  REQUIRE(count.out == "n\n8\n");

  auto started = shell(cli() + " query --db " + db + " --format csv \"select group_concat(started_at) from trials\"");
  auto runs_before = shell(cli() + " query --db " + db + " --format csv \"select count(*) from runs\"");
  auto second = shell(cli() + " run --no-progress " + sweep("good.toml") + " --db " + db);
  REQUIRE(second.status == 0);
  // Nothing ran: no new run row, no trial restarted.
  REQUIRE(shell(cli() + " query --db " + db + " --format csv \"select count(*) from runs\"").out == runs_before.out);
  REQUIRE(shell(cli() + " query --db " + db + " --format csv \"select group_concat(started_at) from trials\"").out ==
          started.out);

  auto forced = shell(cli() + " run --no-progress --force " + sweep("good.toml") + " --db " + db +
                      " && " + cli() + " query --db " + db + " --format csv \"select count(*) from runs\"");
  REQUIRE(forced.status == 0);
  REQUIRE_THAT(forced.out, Catch::EndsWith("2\n"));

  // Every metric the run recorded (trial/wall_s of the engine too) has a declaration.
  ResultStore store(db, /*read_only=*/true);
  const auto names = store.query("select distinct name from metrics");
  REQUIRE(names.rows.size() > 10);
  for (const auto& row : names.rows) {
    INFO("metric " << *row[0]);
    REQUIRE(metrics::find(*row[0]) != nullptr);
  }
}

TEST_CASE("metric names match their declaration, hard_ and _lo/_hi variants included", "[store][metrics]") {
  REQUIRE(std::string(metrics::find("time/median_ms")->pattern) == "time/median_ms");
  REQUIRE(std::string(metrics::find("eval/T256/hard_kl_lo")->pattern) == "eval/T<T>/kl");
  REQUIRE(std::string(metrics::find("eval/T1024/rel_delta_ppl_hi")->pattern) == "eval/T<T>/rel_delta_ppl");
  REQUIRE(std::string(metrics::find("stat/L0/weight/h3/window:64")->pattern) == "stat/L<layer>/<name>");
  REQUIRE(metrics::find("eval/Tx/kl") == nullptr);                // <T> is a number
  REQUIRE(metrics::find("eval/T256/hard_teacher_ppl") == nullptr);  // the teacher has no hard mode
  REQUIRE(metrics::find("eval/T256/student_ppl_lo") == nullptr);    // no interval declared
  REQUIRE(metrics::find("time/median") == nullptr);
  REQUIRE(metrics::find("time/median_ms/x") == nullptr);
  REQUIRE(metrics::eval_name(256, "kl") == "eval/T256/kl");
  // The deployed-mode rule: hard where recorded.
  std::map<std::string, double> finals = {{"eval/T8/kl", 1.0}, {"eval/T8/hard_kl", 2.0}, {"eval/T8/agreement", 0.5}};
  auto lookup = [&](const std::string& name) -> std::optional<double> {
    return finals.count(name) ? std::optional<double>(finals.at(name)) : std::nullopt;
  };
  REQUIRE(metrics::deployed(lookup, 8, "kl") == 2.0);
  REQUIRE(metrics::deployed(lookup, 8, "agreement") == 0.5);
  REQUIRE(!metrics::deployed(lookup, 16, "kl"));
  REQUIRE(metrics::method_key({{"seed", "3"}, {"backend", "blend"}, {"seq_len", "64"}}) == "backend=blend;seq_len=64");
  // The test sink refuses a name nobody declared, and a final metric emitted per step.
  attnlab::test::MemorySink sink;
  REQUIRE_THROWS_WITH(sink.metric("time/median_s", 1.0, -1), Catch::Contains("no declaration"));
  REQUIRE_THROWS_WITH(sink.metric("time/median_ms", 1.0, 3), Catch::Contains("declared final"));
  // Every summary column is unique within its kind.
  std::set<std::string> columns;
  for (const auto& m : metrics::all())
    if (*m.column) REQUIRE(columns.insert(std::string(m.kind) + "/" + m.column).second);
}

TEST_CASE("docs/RESULTS.md is the metrics' declarations and the schema's own listing", "[store][metrics]") {
  const auto listing = shell(cli() + " metrics --markdown");
  REQUIRE(listing.status == 0);
  const std::string committed = file_bytes(std::string(ATTNLAB_SOURCE_DIR) + "/docs/RESULTS.md");
  INFO("regenerate with: build/bin/attnlab metrics --markdown > docs/RESULTS.md");
  REQUIRE(listing.out == committed);
  // Every summary column declared is a column of its kind's first view (trial_summary for a
  // kind with no view of its own), in the database as created.
  const auto dir = fresh_dir("views");
  ResultStore store((dir / "r.sqlite").string());
  trials::define_views(store);
  for (const auto& m : metrics::all()) {
    if (!*m.column) continue;
    const auto own = trials::kind_tables(m.kind).views();
    const std::string view = own.empty() ? "trial_summary" : own.front().name;
    INFO(view << "." << m.column);
    REQUIRE(store.query("select count(*) from pragma_table_info(?1) where name = ?2", {view, m.column}).rows[0][0] ==
            "1");
  }
}

TEST_CASE("min_time_s keeps a bench trial repeating until its timed calls add up", "[store][cli]") {
  const auto dir = fresh_dir("min_time");
  const std::string db = (dir / "r.sqlite").string();
  REQUIRE(shell(cli() + " run --no-progress " + sweep("min_time.toml") + " --db " + db).status == 0);
  auto n = shell(cli() + " query --db " + db + " --format csv \"select count(*), sum(value) from metrics where name = 'time/repeat_ms'\"");
  REQUIRE(n.status == 0);
  const auto row = n.out.substr(n.out.find('\n') + 1);
  const long repeats = std::stol(row.substr(0, row.find(',')));
  const double total_ms = std::stod(row.substr(row.find(',') + 1));
  // Stops once the timed calls add up to min_time_s, or at the cap on a very fast machine. A pass
  // takes well under a millisecond on a quiet machine, so this needs far more than `repeats` = 2
  // there; on a loaded one two slow passes may add up alone, which is also the rule.
  REQUIRE(repeats >= 2);
  REQUIRE((total_ms >= 100.0 || repeats == kMaxRepeats));
}

TEST_CASE("a malformed sweep exits non-zero naming file and line and leaves the database unchanged", "[store][cli]") {
  const auto dir = fresh_dir("malformed");
  const std::string db = (dir / "r.sqlite").string();
  // No database at all: a bad sweep must not create one.
  auto bad = shell(cli() + " run " + sweep("out_of_range.toml") + " --db " + db + " 2>&1");
  REQUIRE(bad.status == 2);
  REQUIRE_THAT(bad.out, Catch::Contains("out_of_range.toml:7:"));
  REQUIRE_FALSE(fs::exists(db));
  // An existing database keeps every byte.
  REQUIRE(shell(cli() + " run --no-progress " + sweep("good.toml") + " --set grid.seq_len=8 --set grid.pass=fwd --db " + db).status == 0);
  shell("sqlite3 " + db + " 'PRAGMA wal_checkpoint(TRUNCATE)'");
  const std::string before = file_bytes(db);
  for (const char* name : {"syntax.toml", "unknown_key.toml", "bad_kind.toml", "unknown_backend.toml", "bad_param.toml",
                           "bad_mask.toml", "bad_candidates.toml", "distill_lr0.toml"}) {
    INFO(name);
    auto r = shell(cli() + " run " + sweep(name) + " --db " + db + " 2>&1");
    REQUIRE(r.status == 2);
    REQUIRE_THAT(r.out, Catch::Contains(std::string(name) + ":"));
  }
  REQUIRE(file_bytes(db) == before);
}

TEST_CASE("query prints csv with a header row, json as objects, and refuses writes", "[cli]") {
  const auto dir = fresh_dir("query");
  const std::string db = (dir / "r.sqlite").string();
  REQUIRE(shell(cli() + " run --no-progress " + sweep("good.toml") + " --set grid.seq_len=8 --set grid.pass=fwd --db " + db).status == 0);
  auto csv = shell(cli() + " query --db " + db + " --format csv \"select backend, count(*) as n from trials group by backend\"");
  REQUIRE(csv.out == "backend,n\ndense,2\n");
  auto json = shell(cli() + " query --db " + db + " --format json \"select count(*) as n from trials\"");
  REQUIRE_THAT(json.out, Catch::Contains("\"n\": 2"));
  auto write = shell(cli() + " query --db " + db + " \"delete from trials\" 2>&1");
  REQUIRE(write.status != 0);
  REQUIRE(shell(cli() + " query --db " + db + " --format csv \"select count(*) from trials\"").out.find("2") != std::string::npos);
  auto trials = shell(cli() + " trials --db " + db + " --sweep test-good");
  REQUIRE(trials.status == 0);
  REQUIRE_THAT(trials.out, Catch::Contains("median_ms") && Catch::Contains("gflops"));
}

TEST_CASE("a version-1 database is migrated in place and its trials resume, as stale", "[store][migration]") {
  // tests/data/v1.sqlite was written by attnlab before schema 2 (git 35406d4+), from
  // tests/data/sweeps/good.toml: its 8 trials are done, with no record of the plugin build.
  const auto dir = fresh_dir("migrate");
  const std::string db = (dir / "v1.sqlite").string();
  fs::copy_file(std::string(ATTNLAB_TEST_DATA) + "/v1.sqlite", db);
  {
    ResultStore store(db);
    REQUIRE(*store.query("select version from schema_info").rows[0][0] == "3");
    REQUIRE(*store.query("select count(*) from trials where status = 'done' and attempt = 0").rows[0][0] == "8");
    // Nothing lost when version 3 rebuilt the trials table: metrics and params still belong
    // to their trials (the rebuild runs with foreign keys off, or the drop would cascade).
    REQUIRE(*store.query("select count(*) from metrics").rows[0][0] == "176");
    REQUIRE(*store.query("select count(*) from metrics m join trials t on t.id = m.trial_id").rows[0][0] == "176");
    REQUIRE(*store.query("select count(*) from params p join trials t on t.id = p.trial_id").rows[0][0] != "0");
    REQUIRE(store.query("pragma foreign_key_check").rows.empty());
    REQUIRE(store.query("select claimed_by, lease_until, plugin_build from trials").rows[0][2] == std::nullopt);
    // Version 3's status; a version-2 table would refuse it (CHECK constraint failed).
    store.db().exec("update trials set status = 'pruned' where id = (select min(id) from trials)");
    store.db().exec("update trials set status = 'done' where status = 'pruned'");
  }
  // The same sweep finds every trial by its key (keys are stable across the change), and
  // since no build is recorded, reports them stale instead of silently reusing or rerunning.
  auto again = shell(cli() + " run --no-progress " + sweep("good.toml") + " --db " + db + " 2>&1");
  REQUIRE(again.status == 0);
  REQUIRE_THAT(again.out, Catch::Contains("8 trial(s) of 'dense' are done with another build"));
  REQUIRE_THAT(again.out, Catch::Contains("0 ran, 8 already done"));
  auto rerun = shell(cli() + " run --no-progress --rerun-stale " + sweep("good.toml") + " --db " + db + " 2>&1");
  REQUIRE(rerun.status == 0);
  REQUIRE_THAT(rerun.out, Catch::Contains("8 ran"));
  ResultStore store(db, /*read_only=*/true);
  REQUIRE(*store.query("select count(*) from trials where plugin_build is not null and plugin_version = '2.0.0'")
               .rows[0][0] == "8");
}

TEST_CASE("a rebuilt plugin's results show up as stale and rerun only with --rerun-stale", "[store][cli]") {
  const auto dir = fresh_dir("stale");
  const std::string db = (dir / "r.sqlite").string();
  const std::string args = " run --no-progress " + sweep("good.toml") + " --set grid.seq_len=8 --set grid.pass=fwd --db " + db;
  REQUIRE(shell(cli() + args).status == 0);
  // Another build of dense: the same code with one byte more, first on the search path.
  fs::create_directories(dir / "plugins");
  fs::copy_file(std::string(ATTNLAB_BINARY_DIR) + "/plugins/dense.so", dir / "plugins" / "dense.so");
  std::ofstream(dir / "plugins" / "dense.so", std::ios::app | std::ios::binary) << '\0';
  const std::string env = "ATTNLAB_PLUGIN_PATH=" + (dir / "plugins").string() + " ";
  auto stale = shell(env + cli() + args + " 2>&1");
  REQUIRE(stale.status == 0);
  REQUIRE_THAT(stale.out, Catch::Contains("2 trial(s) of 'dense' are done with another build of the plugin"));
  REQUIRE_THAT(stale.out, Catch::Contains("0 ran, 2 already done"));
  auto rerun = shell(env + cli() + args + " --rerun-stale 2>&1");
  REQUIRE_THAT(rerun.out, Catch::Contains("2 ran"));
  auto fresh = shell(env + cli() + args + " 2>&1");
  REQUIRE_THAT(fresh.out, !Catch::Contains("another build"));
}
