// attnlab report --sweep NAME   index.md + index.html with tables and gnuplot figures
//                               (docs/REPORTS.md); prints the two paths on stdout.
#include "commands.hpp"
#include "trials/report.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <iostream>
#include <memory>

namespace attnlab::cli {
namespace {

struct ReportArgs {
  std::string db = default_db_path(), sweep, out, baseline = "dense";
  bool no_plots = false;
};

void setup(CLI::App& root, int& exit_code) {
  auto args = std::make_shared<ReportArgs>();
  auto* cmd = root.add_subcommand("report", command_description("report"));
  cmd->add_option("--sweep", args->sweep, "sweep name (see `attnlab query \"select name from sweeps\"`)")->required();
  cmd->add_option("--db", args->db, "results database")->capture_default_str();
  cmd->add_option("--out", args->out, "output directory (default results/reports/<sweep>)");
  cmd->add_option("--baseline", args->baseline, "backend the ratio column and ideal line refer to, "
                  "optionally pinned: dense/execution=sdpa")->capture_default_str();
  cmd->add_flag("--no-plots", args->no_plots, "tables only (no gnuplot needed)");
  cmd->callback([args, &exit_code] {
    if (!database_exists(args->db, exit_code)) return;
    report::ReportOptions options;
    options.sweep = args->sweep;
    options.out = args->out.empty() ? std::filesystem::path("results/reports") / args->sweep : std::filesystem::path(args->out);
    options.baseline = args->baseline;
    options.plots = !args->no_plots;
    report_errors("report", exit_code, [&] {
      ResultStore store(args->db, /*read_only=*/true);
      const auto files = trials::write_report(store, options);
      spdlog::info("report for sweep '{}': {} figures in {}", args->sweep, files.pngs.size(), options.out.string());
      std::cout << files.markdown.string() << "\n" << files.html.string() << "\n";
    });
  });
}

}  // namespace

ATTNLAB_COMMAND(setup);

}  // namespace attnlab::cli
