// attnlab compare --sweep NAME --baseline dense   every trial's ratios to the baseline
// backend's trial at the same grid point (matching rules: core/src/report/compare.hpp; the
// columns are the sweep kind's: TrialKind::compare).
// attnlab compare --sweep NAME --against OLD.sqlite | --against-run N [--fail-if-regression PCT]
// before/after: each trial against itself in another database or an earlier run, with a
// Mann-Whitney U p-value and the geometric mean of the ratios (core/src/report/history.hpp);
// exit 1 when a trial got worse by more than PCT with p < 0.05 (for CI and `git bisect run`).
#include "commands.hpp"
#include "report/compare.hpp"
#include "report/history.hpp"
#include "trials/report.hpp"
#include "table.hpp"

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>

namespace attnlab::cli {
namespace {

struct CompareArgs {
  std::string db = default_db_path(), sweep, baseline = "dense", format = "table", against;
  std::optional<std::int64_t> against_run;
  std::optional<double> fail_pct;
};

void before_after(const CompareArgs& args, int& exit_code) {
  ResultStore store(args.db, /*read_only=*/true);
  const auto pairs = args.against_run ? report::pair_with_run(store, args.sweep, *args.against_run)
                                      : report::pair_with_database(store, args.sweep, args.against);
  const auto result = report::compare_before_after(pairs, args.fail_pct);
  print_result(std::cout, result.table, args.format);
  std::fprintf(stderr, "%zu trial metric(s) compared; geometric mean of the ratios (now / before): %.4f\n",
               pairs.size(), result.geomean);
  for (const auto& r : result.regressions) std::fprintf(stderr, "attnlab compare: regression: %s\n", r.c_str());
  if (!result.regressions.empty()) exit_code = 1;
}

void setup(CLI::App& root, int& exit_code) {
  auto args = std::make_shared<CompareArgs>();
  auto* cmd = root.add_subcommand("compare", command_description("compare"));
  cmd->add_option("--sweep", args->sweep, "sweep name")->required();
  cmd->add_option("--baseline", args->baseline, "baseline backend, optionally pinned: dense/execution=sdpa")
      ->capture_default_str();
  cmd->add_option("--db", args->db, "results database")->capture_default_str();
  cmd->add_option("--format", args->format, "output format")->check(CLI::IsMember({"table", "csv", "json"}))
      ->capture_default_str();
  auto* against = cmd->add_option("--against", args->against, "before/after: the same sweep in another database");
  auto* run = cmd->add_option("--against-run", args->against_run,
                              "before/after: the results run N made, kept when a later run superseded them");
  against->excludes(run);
  cmd->add_option("--fail-if-regression", args->fail_pct,
                  "with --against(-run): exit 1 when a trial is worse by more than PCT percent with p < 0.05")
      ->check(CLI::Range(0.0, 1e6));
  cmd->callback([args, &exit_code] {
    if (!database_exists(args->db, exit_code)) return;
    if (!args->against.empty() || args->against_run) {
      report_errors("compare", exit_code, [&] { before_after(*args, exit_code); });
      return;
    }
    if (args->fail_pct) {
      std::cerr << "attnlab compare: --fail-if-regression needs --against or --against-run\n";
      exit_code = 2;
      return;
    }
    report_errors("compare", exit_code, [&] {
      const auto baseline = report::parse_baseline(args->baseline);
      ResultStore store(args->db, /*read_only=*/true);
      const auto sweep = report::load_sweep_data(store, args->sweep);
      report::require_one_baseline_variant(sweep, baseline, args->baseline);
      bool found = false;
      for (const auto& t : sweep.trials) found = found || t.backend == baseline.backend;
      if (!found)
        std::cerr << "attnlab compare: sweep '" << args->sweep << "' has no trial of backend '" << baseline.backend
                  << "': every ratio is empty\n";
      print_result(std::cout, trials::compare_table(sweep, baseline), args->format);
    });
  });
}

}  // namespace

ATTNLAB_COMMAND(setup);

}  // namespace attnlab::cli
