// attnlab status --sweep NAME [--db PATH]: each trial's state, from the database and, for a
// Slurm sweep, from its shards (engine/slurm.hpp): status, attempts, failures, takeovers, who
// holds a running one and for how much longer, and why a failed one failed. The truth about a
// trial is here, not in sacct.
#include "commands.hpp"
#include "table.hpp"

#include "engine/shard_paths.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>

namespace attnlab::cli {
namespace {

namespace fs = std::filesystem;

struct StatusArgs {
  std::string sweep, db = default_db_path();
};

int rank(const std::string& status) {
  return status == "done" ? 4 : status == "pruned" ? 3 : status == "failed" ? 2 : status == "running" ? 1 : 0;
}

}  // namespace

void setup_status_command(CLI::App& root, int& exit_code) {
  auto args = std::make_shared<StatusArgs>();
  auto* cmd = root.add_subcommand("status", command_description("status"));
  cmd->add_option("--sweep", args->sweep, "sweep name")->required();
  cmd->add_option("--db", args->db, "results database")->capture_default_str();
  cmd->callback([args, &exit_code] {
    std::vector<std::string> files;
    if (fs::exists(args->db)) files.push_back(args->db);
    const fs::path shards = engine::shard_folder(args->db, args->sweep);
    if (fs::is_directory(shards))
      for (const auto& entry : fs::directory_iterator(shards))
        if (entry.path().extension() == ".sqlite") files.push_back(entry.path().string());
    std::sort(files.begin() + (files.empty() || files[0] != args->db ? 0 : 1), files.end());
    if (files.empty()) {
      std::cerr << "attnlab: no database at " << args->db << " and no shards in " << shards.string() << "\n";
      exit_code = 1;
      return;
    }
    const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    // Per trial key, the row from the file with the best status (done > pruned > failed > running > pending).
    std::map<std::string, std::pair<int, std::vector<std::optional<std::string>>>> best;
    std::vector<std::string> order;
    report_errors("status", exit_code, [&] {
      for (const auto& file : files) {
        ResultStore store(file, /*read_only=*/true);
        const auto rows = store.query(
            "SELECT t.key, t.ordinal, t.name, t.status, t.attempt, t.failures, t.takeovers, t.claimed_by, "
            "t.lease_until, substr(replace(coalesce(t.error, ''), char(10), ' '), 1, 90) FROM trials t "
            "JOIN sweeps s ON s.id = t.sweep_id WHERE s.name = ?1 ORDER BY t.ordinal",
            {args->sweep}).rows;
        for (const auto& r : rows) {
          const std::string key = r[0].value_or(""), status = r[3].value_or("");
          std::optional<std::string> lease;
          if (status == "running" && r[8]) lease = std::to_string(static_cast<long>(std::stod(*r[8]) - now)) + " s";
          std::vector<std::optional<std::string>> row = {r[2], r[3], r[4], r[5], r[6],
                                                         fs::path(file).filename().string(),
                                                         status == "running" ? r[7] : std::nullopt, lease, r[9]};
          if (!best.count(key)) order.push_back(key);
          if (!best.count(key) || rank(status) > best[key].first) best[key] = {rank(status), row};
        }
      }
      ResultStore::Table table;
      table.columns = {"trial", "status", "attempt", "failures", "takeovers", "in", "held_by", "lease_left", "error"};
      std::map<std::string, int> counts;
      for (const auto& key : order) {
        table.rows.push_back(best[key].second);
        ++counts[*best[key].second[1]];
      }
      if (table.rows.empty()) {
        std::cerr << "attnlab: no trials of sweep '" << args->sweep << "' in " << files.size() << " database(s)\n";
        exit_code = 1;
        return;
      }
      print_table(std::cout, table);
      std::cout << "sweep '" << args->sweep << "': " << table.rows.size() << " trials";
      for (const char* s : {"done", "running", "pending", "failed", "pruned"}) std::cout << ", " << counts[s] << " " << s;
      std::cout << " (from " << files.size() << " database(s))\n";
    });
  });
}

ATTNLAB_COMMAND(setup_status_command);

}  // namespace attnlab::cli
