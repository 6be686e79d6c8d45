// attnlab check BACKEND [--set key=value ...] [--seq 1,37,130]: the backend contract
// (check/contract.hpp) on any plugin found, in-tree or out of tree (ATTNLAB_PLUGIN_PATH),
// as a pass/fail table. Exit code 0 when everything passes, 1 when a check fails, 2 for a
// bad backend name or parameter.
#include "commands.hpp"
#include "table.hpp"

#include "check/contract.hpp"

#include <attnlab/registry.hpp>

#include <cctype>
#include <iostream>
#include <memory>
#include <sstream>

namespace attnlab::cli {
namespace {

struct CheckArgs {
  std::string backend;
  std::vector<std::string> sets;
  std::vector<std::int64_t> seq_lens = {1, 37, 130};
};

// "42" int, "0.5" float, "true"/"false" bool, anything else a string.
ParamValue parse_value(const std::string& text) {
  if (text == "true" || text == "false") return text == "true";
  char* end = nullptr;
  const long long i = std::strtoll(text.c_str(), &end, 10);
  if (!text.empty() && *end == '\0') return static_cast<std::int64_t>(i);
  const double d = std::strtod(text.c_str(), &end);
  if (!text.empty() && *end == '\0') return d;
  if (text.size() >= 2 && text.front() == '"' && text.back() == '"') return text.substr(1, text.size() - 2);
  return text;
}

void setup(CLI::App& root, int& exit_code) {
  auto args = std::make_shared<CheckArgs>();
  auto* cmd = root.add_subcommand("check", command_description("check"));
  cmd->add_option("backend", args->backend, "backend name (attnlab backends)")->required();
  cmd->add_option("--set", args->sets, "a backend parameter: key=value");
  cmd->add_option("--seq", args->seq_lens, "sequence lengths to check")->delimiter(',')->capture_default_str();
  cmd->callback([args, &exit_code] {
    PluginRegistry registry;
    registry.discover();
    check::ContractOptions options;
    options.seq_lens = args->seq_lens;
    for (const auto& s : args->sets) {
      const auto eq = s.find('=');
      if (eq == std::string::npos) {
        std::cerr << "attnlab check: --set " << s << ": expected key=value\n";
        exit_code = 2;
        return;
      }
      options.params[s.substr(0, eq)] = parse_value(s.substr(eq + 1));
    }
    try {
      registry.validate(args->backend, options.params);
    } catch (const std::exception& e) {
      std::cerr << "attnlab check: " << e.what() << "\n";
      exit_code = 2;
      return;
    }
    const auto results = check::run_contract(registry, args->backend, options);
    ResultStore::Table table;
    table.columns = {"check", "mode", "result", "detail"};
    for (const auto& r : results) {
      const char* outcome = r.outcome == check::CheckResult::Outcome::Pass   ? "pass"
                            : r.outcome == check::CheckResult::Outcome::Fail ? "FAIL"
                                                                             : "n/a";
      table.rows.push_back({r.check, r.mode, std::string(outcome), r.detail});
    }
    const auto& plugin = registry.get(args->backend);
    std::cout << args->backend << " " << plugin.version << " (" << plugin.path << ", build " << plugin.build_id << ")\n";
    print_table(std::cout, table);
    const bool ok = check::all_passed(results);
    std::cout << (ok ? "contract: passed\n" : "contract: FAILED\n");
    exit_code = ok ? 0 : 1;
  });
}

}  // namespace

ATTNLAB_COMMAND(setup);

}  // namespace attnlab::cli
