// attnlab compare --sweep NAME --baseline dense   every trial's ratios to the baseline
// backend's trial at the same grid point (matching rules: core/src/report/compare.hpp).
#include "commands.hpp"
#include "report/compare.hpp"
#include "table.hpp"

#include <filesystem>
#include <iostream>
#include <memory>

namespace attnlab::cli {
namespace {

struct CompareArgs {
  std::string db = default_db_path(), sweep, baseline = "dense", format = "table";
};

void setup(CLI::App& root, int& exit_code) {
  auto args = std::make_shared<CompareArgs>();
  auto* cmd = root.add_subcommand("compare", command_description("compare"));
  cmd->add_option("--sweep", args->sweep, "sweep name")->required();
  cmd->add_option("--baseline", args->baseline, "baseline backend, optionally pinned: dense/execution=sdpa")
      ->capture_default_str();
  cmd->add_option("--db", args->db, "results database")->capture_default_str();
  cmd->add_option("--format", args->format, "output format")->check(CLI::IsMember({"table", "csv", "json"}))
      ->capture_default_str();
  cmd->callback([args, &exit_code] {
    if (!database_exists(args->db, exit_code)) return;
    report_errors("compare", exit_code, [&] {
      const auto baseline = report::parse_baseline(args->baseline);
      ResultStore store(args->db, /*read_only=*/true);
      const auto sweep = report::load_sweep_data(store, args->sweep);
      bool found = false;
      for (const auto& t : sweep.trials) found = found || t.backend == baseline.backend;
      if (!found)
        std::cerr << "attnlab compare: sweep '" << args->sweep << "' has no trial of backend '" << baseline.backend
                  << "': every ratio is empty\n";
      print_result(std::cout, report::compare_table(sweep, baseline), args->format);
    });
  });
}

}  // namespace

ATTNLAB_COMMAND(setup);

}  // namespace attnlab::cli
