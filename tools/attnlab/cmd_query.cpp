// attnlab query "SQL"       any read-only SQL against the results database
// attnlab trials            the summary table of a sweep's kind (trials/<kind>/tables.cpp), or
//                           one per kind of every sweep
#include "commands.hpp"
#include "table.hpp"

#include "trials/tables.hpp"

#include <SQLiteCpp/SQLiteCpp.h>

#include <iostream>
#include <memory>

namespace attnlab::cli {

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
    std::vector<std::pair<std::string, ResultStore::Table>> tables;
    try {
      tables = trials::summaries(store, args->sweep);
    } catch (const std::invalid_argument& e) {
      std::cerr << "attnlab: " << e.what() << "\n";
      exit_code = 1;
      return;
    }
    if (tables.empty()) std::cerr << "attnlab: no sweep in " << args->db << " yet\n";
    // Several kinds, several tables: each under its kind's name, which csv and json cannot say.
    if (tables.size() > 1 && args->format != "table") {
      std::string kinds;
      for (const auto& [kind, table] : tables) kinds += (kinds.empty() ? "" : ", ") + kind;
      std::cerr << "attnlab: " << args->db << " has sweeps of several kinds (" << kinds
                << "), each with its own columns: pick one with --sweep, or use --format table\n";
      exit_code = 2;
      return;
    }
    for (std::size_t i = 0; i < tables.size(); ++i) {
      if (tables.size() > 1) std::cout << (i > 0 ? "\n" : "") << "kind " << tables[i].first << ":\n";
      print_result(std::cout, tables[i].second, args->format);
    }
  });
}

ATTNLAB_COMMAND(setup_query_commands);

}  // namespace attnlab::cli
