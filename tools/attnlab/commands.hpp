#pragma once
// Each subcommand lives in its own cmd_<name>.cpp and registers itself with
//   ATTNLAB_COMMAND(setup_function)
// where setup_function(CLI::App& root, int& exit_code) adds a subcommand whose callback does
// the work and sets exit_code (0 ok, 1 runtime failure, 2 bad input). Order in --help
// follows registration order, which is file order; main() sorts nothing.
#include <CLI/CLI.hpp>

#include <vector>

namespace attnlab::cli {

using CommandSetup = void (*)(CLI::App& root, int& exit_code);

std::vector<CommandSetup>& command_list();

struct RegisterCommand {
  explicit RegisterCommand(CommandSetup setup) { command_list().push_back(setup); }
};

// Default database path: results/attnlab.sqlite relative to the current directory.
inline const char* default_db_path() { return "results/attnlab.sqlite"; }

}  // namespace attnlab::cli

#define ATTNLAB_COMMAND_CAT2(a, b) a##b
#define ATTNLAB_COMMAND_CAT(a, b) ATTNLAB_COMMAND_CAT2(a, b)
#define ATTNLAB_COMMAND(setup) \
  static ::attnlab::cli::RegisterCommand ATTNLAB_COMMAND_CAT(attnlab_command_, __LINE__)(setup)
