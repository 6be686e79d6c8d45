// attnlab merge --db TARGET SHARD...: fold shard databases into TARGET by trial key
// (runtime/merge.hpp): idempotent, done beats failed.
#include "commands.hpp"

#include "runtime/merge.hpp"
#include "trials/tables.hpp"

#include <iostream>
#include <memory>

namespace attnlab::cli {
namespace {

struct MergeArgs {
  std::string db = default_db_path();
  std::vector<std::string> shards;
};

void setup(CLI::App& root, int& exit_code) {
  auto args = std::make_shared<MergeArgs>();
  auto* cmd = root.add_subcommand("merge", command_description("merge"));
  cmd->add_option("--db", args->db, "target database (created if missing)")->capture_default_str();
  cmd->add_option("shards", args->shards, "shard databases")->required()->check(CLI::ExistingFile);
  cmd->callback([args, &exit_code] {
    report_errors("merge", exit_code, [&] {
      ResultStore target(args->db);
      trials::define_views(target);  // a new target gets the trial kinds' views, an old one the current ones
      MergeSummary total;
      for (const auto& shard : args->shards) {
        const auto s = merge_into(target, shard);
        std::cout << shard << ": " << s.added << " added, " << s.replaced << " replaced by a better result, " << s.kept
                  << " kept\n";
        total.added += s.added, total.replaced += s.replaced, total.kept += s.kept;
      }
      std::cout << "merged " << args->shards.size() << " shard(s) into " << args->db << ": " << total.added
                << " added, " << total.replaced << " replaced, " << total.kept << " kept\n";
    });
  });
}

}  // namespace

ATTNLAB_COMMAND(setup);

}  // namespace attnlab::cli
