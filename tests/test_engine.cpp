// The execution engine end to end with the real CLI, real child processes and real SQLite:
// crashing, aborting, hanging and killed trials fail alone with their reasons; retries;
// cooperating runners never execute a trial twice (executions counted by the fault backend's
// own log, not by database rows); kill -9 of whole workers, round after round, loses nothing.
#include "engine/filesystem.hpp"
#include "runtime/store.hpp"

#include "catch.hpp"

#include "engine_support.hpp"
#include "support.hpp"

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

using namespace attnlab;
namespace fs = std::filesystem;

namespace {

using attnlab::test::cell;
using attnlab::test::cli;
using attnlab::test::cli_with_faults;
using attnlab::test::fresh_dir;
using attnlab::test::shell;
using attnlab::test::write;

std::string fault_sweep(const std::string& name, const std::string& sweep_extra, const std::string& fault_table) {
  return "[sweep]\nname = \"" + name + "\"\nkind = \"bench\"\nwarmup = 0\nrepeats = 1\n" + sweep_extra +
         "\n[grid]\nbackend = [\"fault\"]\nseq_len = 8\nheads = 1\nhead_dim = 4\n\n[backend.fault]\n" + fault_table + "\n";
}

// tag -> how many executions started / ended, from the fault backend's log.
struct Executions {
  std::map<std::string, int> started, ended;
  int total_started = 0;
};
Executions read_log(const fs::path& log) {
  Executions e;
  std::ifstream in(log);
  std::string what, tag, pid, when;
  while (in >> what >> tag >> pid >> when) {
    if (what == "start") ++e.started[tag], ++e.total_started;
    if (what == "end") ++e.ended[tag];
  }
  return e;
}

std::string tags(int n) {
  std::string out = "tag = [";
  for (int i = 0; i < n; ++i) out += (i ? ", " : "") + std::string("\"t") + std::to_string(i) + "\"";
  return out + "]";
}

}  // namespace

TEST_CASE("crashing, aborting, hanging and killed trials fail alone, with their reasons", "[engine][faults]") {
  const auto dir = fresh_dir("faults");
  const auto db = (dir / "r.sqlite").string();
  const auto sweep = write(dir / "faults.toml",
                           fault_sweep("faults", "trial_timeout_s = 4",
                                       "fault = [\"segfault\", \"none\", \"abort\", \"hang\", \"sigkill\", \"throw\", "
                                       "\"exit\"]\ntag = \"x\""));
  const auto start = std::chrono::steady_clock::now();
  const auto run = shell(cli_with_faults(dir / "log") + " run --no-progress --no-ceiling " + sweep + " --db " + db + " 2>&1");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  INFO(run.out);
  REQUIRE(run.status == 1);  // some trials failed; the sweep itself went on to the end
  REQUIRE(seconds < 60);
  REQUIRE_THAT(run.out, Catch::Contains("7 trials: 1 ran, 0 already done, 6 failed"));
  ResultStore store(db, /*read_only=*/true);
  auto error = [&](const std::string& fault) {
    return cell(store, "select status || ': ' || coalesce(error, '') from trials where name = 'fault/fault:" + fault + "'");
  };
  REQUIRE(error("none") == "done: ");
  REQUIRE_THAT(error("segfault"), Catch::StartsWith("failed: killed by signal 11"));
  REQUIRE_THAT(error("abort"), Catch::StartsWith("failed: killed by signal 6"));
  REQUIRE_THAT(error("hang"), Catch::StartsWith("failed: timed out after"));
  REQUIRE_THAT(error("sigkill"), Catch::StartsWith("failed: killed by signal 9") && Catch::Contains("out-of-memory"));
  REQUIRE_THAT(error("throw"), Catch::Contains("fault backend: asked to throw"));
  REQUIRE_THAT(error("exit"), Catch::StartsWith("failed: exit code 7"));
  REQUIRE(cell(store, "select count(*) from trials where status = 'running'") == "0");
  // The done trial's numbers are all there.
  REQUIRE(cell(store, "select count(*) from metrics m join trials t on t.id = m.trial_id "
                      "where t.status = 'done' and m.name = 'time/median_ms'") == "1");
}

TEST_CASE("max_attempts retries a trial that failed, and the retry's result is recorded", "[engine][faults]") {
  const auto dir = fresh_dir("retry");
  for (int attempts : {1, 2}) {
    INFO("max_attempts = " << attempts);
    fs::remove(dir / ("log.once-once" + std::to_string(attempts)));
    const auto sweep = write(dir / "retry.toml",
                             fault_sweep("retry", "max_attempts = " + std::to_string(attempts),
                                         "fault = \"crash_once\"\ntag = \"once" + std::to_string(attempts) + "\""));
    const auto db = (dir / ("r" + std::to_string(attempts) + ".sqlite")).string();
    shell(cli_with_faults(dir / "log") + " run --no-progress --no-ceiling " + sweep + " --db " + db + " 2>&1");
    ResultStore store(db, /*read_only=*/true);
    if (attempts == 1) {
      REQUIRE_THAT(cell(store, "select status || ' ' || error from trials"), Catch::StartsWith("failed killed by signal 11"));
    } else {
      REQUIRE(cell(store, "select status || ' ' || attempt from trials") == "done 2");
    }
  }
}

TEST_CASE("two runners on one database share the work and never execute a trial twice", "[engine][claims]") {
  const auto dir = fresh_dir("two_runners");
  const auto db = (dir / "r.sqlite").string();
  const auto sweep = write(dir / "twelve.toml", fault_sweep("twelve", "", "sleep_ms = 300\n" + tags(12)));
  const std::string run = cli_with_faults(dir / "log") + " run --no-progress --no-ceiling " + sweep + " --db " + db;
  // Both start at once; each is one worker (a bench sweep), so two trials run at a time.
  const auto both = shell("(" + run + " > " + (dir / "a.out").string() + " 2>&1 & " + run + " > " +
                          (dir / "b.out").string() + " 2>&1 & wait)");
  REQUIRE(both.status == 0);
  const auto executions = read_log(dir / "log");
  INFO(attnlab::test::file_bytes(dir / "a.out") << attnlab::test::file_bytes(dir / "b.out"));
  REQUIRE(executions.total_started == 12);
  for (int i = 0; i < 12; ++i) {
    const std::string tag = "t" + std::to_string(i);
    INFO(tag);
    REQUIRE(executions.started.count(tag) == 1);
    REQUIRE(executions.started.at(tag) == 1);
  }
  ResultStore store(db, /*read_only=*/true);
  REQUIRE(cell(store, "select count(*) from trials where status = 'done'") == "12");
  // Both did some of it.
  REQUIRE(cell(store, "select count(distinct claimed_by) from trials") == "2");
}

TEST_CASE("kill -9 of --jobs 2 workers, round after round: every trial ends done once, the file intact",
          "[engine][claims][kill]") {
  const auto dir = fresh_dir("kill9");
  const auto db = (dir / "r.sqlite").string();
  const int n = 16;
  const auto sweep = write(dir / "sixteen.toml", fault_sweep("sixteen", "", "sleep_ms = 800\n" + tags(n)));
  const std::string run =
      cli_with_faults(dir / "log") + " run --no-progress --no-ceiling --jobs 2 --lease-s 2 " + sweep + " --db " + db;
  std::mt19937 rng(7);
  // Late enough that workers are mid-trial (a run needs ~1 s to start its first child).
  std::uniform_int_distribution<int> wait_ms(1500, 4000);
  int rounds = 0, finished_early = 0;
  for (; rounds < 10; ++rounds) {
    const auto started = shell("sh -c 'exec env " + run + " > " + (dir / "round.out").string() + " 2>&1' & echo $!");
    const std::string pid = started.out.substr(0, started.out.find('\n'));
    std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms(rng)));
    finished_early += shell("kill -9 " + pid + " 2>/dev/null").status != 0;
    shell("while kill -0 " + pid + " 2>/dev/null; do sleep 0.05; done");
  }
  // The last run, undisturbed, finishes what the killed ones left (taking over the claims of
  // dead workers of this host at once).
  const auto last = shell(run + " 2>&1");
  INFO(last.out);
  REQUIRE(last.status == 0);
  const auto executions = read_log(dir / "log");
  ResultStore store(db, /*read_only=*/true);
  REQUIRE(cell(store, "PRAGMA integrity_check") == "ok");
  REQUIRE(cell(store, "select count(*) from trials") == std::to_string(n));
  REQUIRE(cell(store, "select count(*) from trials where status = 'done'") == std::to_string(n));
  // Every done trial has its numbers: nothing was half-written by a killed worker.
  REQUIRE(cell(store, "select count(distinct m.trial_id) from metrics m where m.name = 'time/median_ms'") ==
          std::to_string(n));
  for (int i = 0; i < n; ++i) REQUIRE(executions.started.count("t" + std::to_string(i)) == 1);
  // The kills did land mid-trial: some executions started and never ended.
  REQUIRE(executions.total_started > n);
  WARN(rounds << " rounds of kill -9 (" << finished_early << " runs had finished before their kill), "
              << executions.total_started << " executions started for " << n << " trials");
}

// The fork server (engine/fork_server.hpp): trials are forked from it, not exec'd (each
// records how its process started as trial_info engine.spawn); a crash in a forked child
// fails that trial alone, with its signal, and the next trial runs; ATTNLAB_FORK_SERVER=0
// goes back to exec with the same outcomes.
TEST_CASE("trials run in children of the fork server, and a crash there fails that trial alone", "[engine][fork_server]") {
  const auto dir = fresh_dir("fork_server");
  const auto sweep = write(dir / "forked.toml", fault_sweep("forked", "", "fault = [\"segfault\", \"none\", \"throw\", \"abort\"]\n"
                                                                          "tag = [\"a\", \"b\"]"));
  for (const std::string spawn : {"fork-server", "exec"}) {
    for (const std::string jobs : {"1", "2"}) {
      INFO(spawn << ", --jobs " << jobs);
      const auto db = (dir / (spawn + jobs + ".sqlite")).string();
      const std::string env = spawn == "exec" ? "ATTNLAB_FORK_SERVER=0 " : "";
      const auto run = shell(env + cli_with_faults(dir / "log") + " run --no-progress --no-ceiling --jobs " + jobs + " " +
                             sweep + " --db " + db + " 2>&1");
      INFO(run.out);
      REQUIRE(run.status == 1);
      REQUIRE_THAT(run.out, Catch::Contains("8 trials: 2 ran, 0 already done, 6 failed"));
      ResultStore store(db, /*read_only=*/true);
      REQUIRE(cell(store, "select count(*) from trials where status = 'failed' and name like '%fault:segfault%' "
                          "and error like 'killed by signal 11%'") == "2");
      REQUIRE(cell(store, "select count(*) from trials where status = 'failed' and name like '%fault:abort%' "
                          "and error like 'killed by signal 6%'") == "2");
      REQUIRE(cell(store, "select count(*) from trials where status = 'failed' and error like '%asked to throw%'") == "2");
      // Every done trial (those after a crash included) says how its process started.
      REQUIRE(cell(store, "select count(*) from trials t join trial_info i on i.trial_id = t.id "
                          "where t.status = 'done' and i.key = 'engine.spawn' and i.value = '" + spawn + "'") == "2");
    }
  }
}

// kill -9 of `attnlab run` while a forked trial runs: the server dies with the runner and the
// trial with the server (PR_SET_PDEATHSIG on both), so no orphan goes on computing.
TEST_CASE("kill -9 of the runner leaves no forked trial behind", "[engine][fork_server][kill]") {
  const auto dir = fresh_dir("fork_orphan");
  const auto sweep = write(dir / "long.toml", fault_sweep("long", "", "sleep_ms = 60000\ntag = \"long\""));
  const auto started = shell("sh -c 'exec env " + cli_with_faults(dir / "log") + " run --no-progress --no-ceiling " +
                             sweep + " --db " + (dir / "r.sqlite").string() + " > " + (dir / "out").string() +
                             " 2>&1' & echo $!");
  const std::string runner = started.out.substr(0, started.out.find('\n'));
  std::string trial;
  for (int i = 0; i < 600 && trial.empty(); ++i) {  // up to 60 s for the trial to start
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::ifstream in(dir / "log");
    std::string what, tag, pid, when;
    while (in >> what >> tag >> pid >> when)
      if (what == "start") trial = pid;
  }
  INFO(attnlab::test::file_bytes(dir / "out"));
  REQUIRE_FALSE(trial.empty());
  REQUIRE(trial != runner);
  REQUIRE(shell("kill -9 " + runner).status == 0);
  // Gone within 10 s (in practice at once: the kernel sends both signals as each parent dies);
  // a zombie waiting for init to reap it counts as gone.
  REQUIRE(shell("for i in $(seq 100); do s=$(cat /proc/" + trial + "/stat 2>/dev/null) || exit 0; "
                "case \"$s\" in *') Z '*) exit 0;; esac; sleep 0.1; done; exit 1").status == 0);
}

TEST_CASE("a network filesystem is recognised by its statfs magic", "[engine][filesystem]") {
  REQUIRE(engine::network_filesystem_name(0x6969) == std::optional<std::string>("nfs"));
  REQUIRE(engine::network_filesystem_name(0x0BD00BD0) == std::optional<std::string>("lustre"));
  REQUIRE(engine::network_filesystem_name(0x47504653) == std::optional<std::string>("gpfs"));
  REQUIRE(engine::network_filesystem_name(static_cast<long>(0xFF534D42)) == std::optional<std::string>("cifs"));
  REQUIRE_FALSE(engine::network_filesystem_name(0xEF53).has_value());  // ext4
  REQUIRE_FALSE(engine::network_filesystem_of(fresh_dir("localfs").string() + "/r.sqlite").has_value());
}
