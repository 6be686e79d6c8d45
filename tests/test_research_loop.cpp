// The research loop end to end with the real CLI, child processes and SQLite: a diverging
// trial stops at once with its reason and keeps its curves; the median pruner stops a
// hopeless trial, which a plain rerun leaves alone; rounds run every trial N times in
// shuffled orders and pool the repeats; sample draws a seeded subset of the grid; a rerun
// keeps what it supersedes and `compare --against(-run)` tests before against after;
// bad input is refused before anything runs.
#include "report/stats.hpp"
#include "runtime/store.hpp"

#include "catch.hpp"

#include "engine_support.hpp"
#include "support.hpp"

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <vector>

using namespace attnlab;
namespace fs = std::filesystem;

namespace {

using attnlab::test::cell;
using attnlab::test::cli;
using attnlab::test::cli_with_faults;
using attnlab::test::fresh_dir;
using attnlab::test::shell;
using attnlab::test::write;

// A distill sweep small enough for a test: a 1-layer teacher on a tiny corpus, students of
// `backends` trained `steps` steps, every step logged.
std::string distill_sweep(const fs::path& dir, const std::string& name, const std::string& sweep_extra,
                          const std::string& backends, const std::string& backend_tables, int steps = 8) {
  std::ofstream corpus(dir / "corpus.txt");
  std::mt19937 rng(3);
  const char* words[] = {"the jury", "said", "it was", "a report", "of the city", "and the vote"};
  for (int line = 0; line < 400; ++line) corpus << words[rng() % 6] << " " << words[rng() % 6] << ".\n";
  return "[sweep]\nname = \"" + name + "\"\nkind = \"distill\"\n" + sweep_extra +
         "\n[grid]\nbackend = " + backends + "\nseq_len = 16\nbatch = 2\nsteps = " + std::to_string(steps) +
         "\nlog_every = 1\n\n[data]\ncorpus = \"text:" + (dir / "corpus.txt").string() +
         "\"\ntokenizer = \"bytes\"\n\n[teacher]\nn_layer = 1\nn_head = 2\nn_embd = 16\nblock_size = 32\n"
         "steps = 150\nbatch = 4\nseq_len = 16\nlr = 0.01\n\n[eval]\nseq_lens = [16]\nwindows = 2\nbootstrap = 0\n"
         "timing_batches = 1\nsample_tokens = 0\n" +
         backend_tables;
}

std::string bench_sweep(const std::string& name, const std::string& sweep_extra, const std::string& fault_table,
                        int repeats = 2) {
  return "[sweep]\nname = \"" + name + "\"\nkind = \"bench\"\nwarmup = 0\nrepeats = " + std::to_string(repeats) +
         "\n" + sweep_extra +
         "\n[grid]\nbackend = [\"fault\"]\nseq_len = 8\nheads = 1\nhead_dim = 4\n\n[backend.fault]\n" + fault_table +
         "\n";
}

}  // namespace

TEST_CASE("a diverging distill trial fails at once with its step, quantity and last finite value", "[loop][divergence]") {
  const auto dir = fresh_dir("diverge");
  const auto db = (dir / "r.sqlite").string();
  // Every layer's fault backend returns NaN from its 4th forward on: step 3 of the student.
  const auto sweep = write(dir / "d.toml", distill_sweep(dir, "diverge", "", "[\"fault\", \"dense\"]",
                                                         "\n[backend.fault]\nnan_after = 3\n", 30));
  const auto run = shell(cli_with_faults(dir / "log") + " run --no-progress " + sweep + " --db " + db +
                         " --results-dir " + (dir / "results").string() + " 2>&1");
  INFO(run.out);
  REQUIRE(run.status == 1);  // a trial failed; the sweep went on
  ResultStore store(db, /*read_only=*/true);
  const std::string fault = "(select id from trials where backend = 'fault')";
  REQUIRE(cell(store, "select status from trials where backend = 'fault'") == "failed");
  REQUIRE_THAT(cell(store, "select error from trials where backend = 'fault'"),
               Catch::StartsWith("diverged: student train/loss is NaN at step 3 (last finite value") &&
                   Catch::Contains("at step 2)"));
  // Stopped at once: its curves end at the last finite step, and nothing was evaluated.
  REQUIRE(cell(store, "select max(step) from metrics where name = 'train/kl' and trial_id = " + fault) == "2");
  REQUIRE(cell(store, "select count(*) from metrics where name like 'eval/%' and trial_id = " + fault) == "0");
  REQUIRE(cell(store, "select status from trials where backend = 'dense'") == "done");
  // A diverged trial is final: it is not retried (max_attempts), and its failure says why.
  REQUIRE(cell(store, "select failures from trials where backend = 'fault'") == "0");
}

TEST_CASE("the median pruner stops a trial worse than the finished ones, and a plain rerun leaves it pruned",
          "[loop][prune]") {
  const auto dir = fresh_dir("prune");
  const auto db = (dir / "r.sqlite").string();
  // dense first (KL 0 at every step, done), then the fault backend's uniform averaging: its KL
  // is above that median from the first step on, so it is pruned once the warmup is over.
  const auto sweep =
      write(dir / "p.toml", distill_sweep(dir, "prune", "prune = \"median\"\nprune_warmup = 2\nprune_min_trials = 1\n",
                                          "[\"dense\", \"fault\"]", ""));
  const auto run = shell(cli_with_faults(dir / "log") + " run --no-progress " + sweep + " --db " + db +
                         " --results-dir " + (dir / "results").string() + " 2>&1");
  INFO(run.out);
  REQUIRE(run.status == 0);  // pruning is no failure
  REQUIRE_THAT(run.out, Catch::Contains("1 pruned"));
  ResultStore store(db, /*read_only=*/true);
  REQUIRE(cell(store, "select status from trials where backend = 'dense'") == "done");
  REQUIRE(cell(store, "select status from trials where backend = 'fault'") == "pruned");
  REQUIRE_THAT(cell(store, "select error from trials where backend = 'fault'"),
               Catch::StartsWith("pruned at step 2: best train/kl so far") &&
                   Catch::Contains("is worse than the median"));
  // Its curves up to the pruning step are kept.
  REQUIRE(cell(store, "select count(*) from metrics m join trials t on t.id = m.trial_id where t.backend = 'fault' "
                      "and m.name = 'train/kl'") == "3");
  const auto again = shell(cli_with_faults(dir / "log") + " run --no-progress " + sweep + " --db " + db +
                           " --results-dir " + (dir / "results").string() + " 2>&1");
  REQUIRE_THAT(again.out, Catch::Contains("all 2 trials already done"));
  const auto status = shell(cli() + " status --sweep prune --db " + db);
  REQUIRE_THAT(status.out, Catch::Contains("1 pruned"));
}

TEST_CASE("rounds run every trial N times in shuffled orders and pool the repeats", "[loop][rounds]") {
  const auto dir = fresh_dir("rounds");
  const auto db = (dir / "r.sqlite").string();
  const auto sweep = write(dir / "r.toml", bench_sweep("rounds", "rounds = 3\nseed = 4",
                                                       "tag = [\"a\", \"b\", \"c\", \"d\", \"e\"]"));
  const auto run = shell(cli_with_faults(dir / "log") + " run --no-progress --no-ceiling " + sweep + " --db " + db + " 2>&1");
  INFO(run.out);
  REQUIRE(run.status == 0);
  // The executions, in the order the fault backend logged them: 3 rounds of 5.
  std::vector<std::string> order;
  std::ifstream log(dir / "log");
  for (std::string what, tag, pid, when; log >> what >> tag >> pid >> when;)
    if (what == "start") order.push_back(tag);
  REQUIRE(order.size() == 15);
  std::map<std::string, int> count;
  for (const auto& t : order) ++count[t];
  for (const auto& [tag, n] : count) REQUIRE(n == 3);
  const std::vector<std::string> r1(order.begin(), order.begin() + 5), r2(order.begin() + 5, order.begin() + 10),
      r3(order.begin() + 10, order.end());
  const std::vector<std::string> grid = {"a", "b", "c", "d", "e"};
  REQUIRE(!(r1 == grid && r2 == grid && r3 == grid));  // shuffled, not the sweep's order every time
  REQUIRE((r1 != r2 || r2 != r3));
  ResultStore store(db, /*read_only=*/true);
  // Every trial pooled 3 rounds x 2 repeats, and its statistics are over all of them.
  REQUIRE(cell(store, "select count(*) from trials where status = 'done'") == "5");
  REQUIRE(cell(store, "select min(n) || ' ' || max(n) from (select count(*) as n from metrics "
                      "where name = 'time/repeat_ms' group by trial_id)") == "6 6");
  REQUIRE(cell(store, "select min(value) from metrics where name = 'time/rounds'") == "3.0");
  // Nothing left to do: a rerun runs nothing.
  const auto again = shell(cli_with_faults(dir / "log") + " run --no-progress --no-ceiling " + sweep + " --db " + db + " 2>&1");
  REQUIRE_THAT(again.out, Catch::Contains("all 5 trials already done"));
}

TEST_CASE("sample draws a seeded subset of the grid, the same on every run", "[loop][sample]") {
  const auto dir = fresh_dir("sample");
  const auto sweep = write(dir / "s.toml", bench_sweep("sample", "sample = 4\nseed = 9",
                                                       "tag = [\"a\", \"b\", \"c\", \"d\", \"e\", \"f\", \"g\"]"));
  const auto first = shell(cli_with_faults(dir / "log") + " run --dry-run " + sweep + " 2>&1");
  const auto second = shell(cli_with_faults(dir / "log") + " run --dry-run " + sweep + " 2>&1");
  INFO(first.out);
  REQUIRE(first.status == 0);
  REQUIRE(first.out == second.out);
  int listed = 0;
  for (const char* t : {"a", "b", "c", "d", "e", "f", "g"})
    listed += first.out.find("fault/tag:" + std::string(t) + "\n") != std::string::npos;
  REQUIRE(listed == 4);
  const auto other_seed = shell(cli_with_faults(dir / "log") + " run --dry-run " + sweep + " --set sweep.seed=10 2>&1");
  REQUIRE(other_seed.out != first.out);
  const auto too_many = shell(cli_with_faults(dir / "log") + " run --dry-run " + sweep + " --set sweep.sample=8 2>&1");
  REQUIRE(too_many.status == 2);
  REQUIRE_THAT(too_many.out, Catch::Contains("[sweep] sample = 8 is more than the grid's 7 trials"));
}

TEST_CASE("a rerun keeps what it supersedes, and compare --against(-run) tests before against after", "[loop][compare]") {
  const auto dir = fresh_dir("before_after");
  const auto db = (dir / "now.sqlite").string(), old_db = (dir / "old.sqlite").string();
  const auto sweep = write(dir / "c.toml", bench_sweep("ba", "", "tag = [\"a\", \"b\"]", 12));
  const std::string run = " run --no-progress --no-ceiling " + sweep + " --db ";
  REQUIRE(shell(cli_with_faults(dir / "log") + run + old_db + " 2>&1").status == 0);
  REQUIRE(shell(cli_with_faults(dir / "log") + run + db + " 2>&1").status == 0);
  // The same trials, 50 ms slower per call: a real slowdown, outside the trials' keys.
  REQUIRE(shell(cli_with_faults(dir / "log", "ATTNLAB_FAULT_EXTRA_SLEEP_MS=50") + run + db + " --force 2>&1").status == 0);
  {
    ResultStore store(db, /*read_only=*/true);
    // The first run's repeats are kept, tagged with their run, beside the new ones.
    REQUIRE(cell(store, "select count(*) from superseded_metrics where name = 'time/repeat_ms' and run_id = 1") == "24");
    REQUIRE(cell(store, "select count(*) from metrics where name = 'time/repeat_ms'") == "24");
  }
  const auto against = shell(cli() + " compare --sweep ba --db " + db + " --against " + old_db +
                             " --format csv --fail-if-regression 10 2>&1");
  INFO(against.out);
  REQUIRE(against.status == 1);  // slower by far more than 10%, p < 0.05
  REQUIRE_THAT(against.out, Catch::Contains("REGRESSION") && Catch::Contains("geometric mean of the ratios"));
  const auto against_run = shell(cli() + " compare --sweep ba --db " + db + " --against-run 1 --format csv 2>&1");
  INFO(against_run.out);
  REQUIRE(against_run.status == 0);  // no threshold given: a report, not a verdict
  REQUIRE_THAT(against_run.out, Catch::Contains("fault/tag:a,time/repeat_ms,12,12,") && Catch::Contains(",higher,"));
  // The old database against itself: nothing changed, no regression.
  const auto same = shell(cli() + " compare --sweep ba --db " + old_db + " --against " + old_db +
                          " --fail-if-regression 10 2>&1");
  REQUIRE(same.status == 0);
  REQUIRE_THAT(same.out, Catch::Contains("geometric mean of the ratios (now / before): 1.0000"));
}

TEST_CASE("compare --against refuses what it cannot pair, with the reason", "[loop][compare]") {
  const auto dir = fresh_dir("against_bad");
  const auto db = (dir / "r.sqlite").string();
  const auto sweep = write(dir / "c.toml", bench_sweep("x", "", "tag = \"a\""));
  REQUIRE(shell(cli_with_faults(dir / "log") + " run --no-progress --no-ceiling " + sweep + " --db " + db).status == 0);
  write(dir / "not_a_db.sqlite", "hello");
  const auto junk = shell(cli() + " compare --sweep x --db " + db + " --against " + (dir / "not_a_db.sqlite").string() + " 2>&1");
  REQUIRE(junk.status == 1);
  REQUIRE_THAT(junk.out, Catch::Contains("is not an attnlab results database"));
  const auto other = (dir / "other.sqlite").string();
  { ResultStore empty(other); }
  const auto none = shell(cli() + " compare --sweep x --db " + db + " --against " + other + " 2>&1");
  REQUIRE(none.status == 1);
  REQUIRE_THAT(none.out, Catch::Contains("no trial has results both here and in"));
  const auto no_run = shell(cli() + " compare --sweep x --db " + db + " --against-run 99 2>&1");
  REQUIRE_THAT(no_run.out, Catch::Contains("--against-run 99: no such run"));
  const auto lone = shell(cli() + " compare --sweep x --db " + db + " --fail-if-regression 5 2>&1");
  REQUIRE(lone.status == 2);
}

TEST_CASE("research-loop keys are refused where they cannot act, at their line", "[loop][config]") {
  const auto dir = fresh_dir("loop_config");
  auto refused = [&](const std::string& text) {
    const auto path = write(dir / "bad.toml", text);
    const auto r = shell(cli_with_faults(dir / "log") + " run --dry-run " + path + " 2>&1");
    REQUIRE(r.status == 2);
    return r.out;
  };
  REQUIRE_THAT(refused(bench_sweep("b", "prune = \"median\"", "")),
               Catch::Contains("bad.toml:6:9: [sweep] prune: kind = \"bench\" logs no per-step metric"));
  REQUIRE_THAT(refused(bench_sweep("b", "prune = \"hyperband\"", "")), Catch::Contains("one of none|median"));
  REQUIRE_THAT(refused(bench_sweep("b", "rounds = 0", "")), Catch::Contains("rounds"));
  REQUIRE_THAT(refused(distill_sweep(dir, "d", "prune = \"median\"\nprune_metric = \"eval/kl\"", "[\"dense\"]", "")),
               Catch::Contains("bad.toml:5:16: [sweep] prune_metric: 'eval/kl' is not a per-step metric of kind = "
                               "\"distill\" (it logs: train/loss, train/ce, train/kl, train/reg)"));
  REQUIRE_THAT(refused(distill_sweep(dir, "d", "rounds = 2", "[\"dense\"]", "")),
               Catch::Contains("[sweep] rounds: only bench sweeps time repeats to pool"));
}

TEST_CASE("user input never enters SQL text: a sweep name with a quote is just a name", "[loop][sql]") {
  const auto dir = fresh_dir("quote");
  const auto db = (dir / "r.sqlite").string();
  const auto sweep = write(dir / "q.toml", bench_sweep("it's", "", "tag = \"a\""));
  REQUIRE(shell(cli_with_faults(dir / "log") + " run --no-progress --no-ceiling " + sweep + " --db " + db).status == 0);
  const auto status = shell(cli() + " status --sweep \"it's\" --db " + db + " 2>&1");
  INFO(status.out);
  REQUIRE(status.status == 0);
  REQUIRE_THAT(status.out, Catch::Contains("sweep 'it's': 1 trials, 1 done"));
  const auto trials = shell(cli() + " trials --sweep \"it's\" --db " + db + " 2>&1");
  REQUIRE(trials.status == 0);
  REQUIRE_THAT(trials.out, Catch::Contains("fault"));
  const auto missing = shell(cli() + " status --sweep \"x') or ('1'='1\" --db " + db + " 2>&1");
  REQUIRE(missing.status == 1);
  REQUIRE_THAT(missing.out, Catch::Contains("no trials of sweep"));
}

TEST_CASE("Mann-Whitney U: exact p-values by the U distribution, asymptotic with ties", "[loop][stats]") {
  using report::mann_whitney_p;
  // Fully separated samples of 5 and 5: 2 / C(10, 5).
  REQUIRE(mann_whitney_p({1, 2, 3, 4, 5}, {6, 7, 8, 9, 10}) == Approx(2.0 / 252));
  // U = 5 for 6 against 5: P(U <= 5) = 19 / C(11, 5) (partitions of 0..5 into parts <= 5).
  REQUIRE(mann_whitney_p({1, 2, 3, 4, 5, 11}, {6, 7, 8, 9, 10}) == Approx(2.0 * 19 / 462));
  // Symmetric in its arguments; identical samples (all ties) give 1.
  REQUIRE(mann_whitney_p({3, 1, 4, 1, 5}, {9, 2, 6, 5, 3}) == Approx(mann_whitney_p({9, 2, 6, 5, 3}, {3, 1, 4, 1, 5})));
  REQUIRE(mann_whitney_p({2, 2, 2}, {2, 2, 2}) == Approx(1.0));
  // Large separated samples: tiny p through the normal approximation (ties force it).
  std::vector<double> low(60, 1.0), high(60, 2.0);
  REQUIRE(mann_whitney_p(low, high) < 1e-10);
  REQUIRE(report::geometric_mean({2.0, 0.5}) == Approx(1.0));
  REQUIRE(report::geometric_mean({2.0, 8.0}) == Approx(4.0));
}
