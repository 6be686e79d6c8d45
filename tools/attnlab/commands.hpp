#pragma once
// Each subcommand lives in its own cmd_<name>.cpp and registers itself with
//   ATTNLAB_COMMAND(setup_function)
// where setup_function(CLI::App& root, int& exit_code) adds a subcommand whose callback does
// the work and sets exit_code (0 ok, 1 runtime failure, 2 bad input). Order in --help
// follows registration order, which is file order; main() sorts nothing.
#include "command_catalog.hpp"

#include <CLI/CLI.hpp>

#include <filesystem>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

namespace attnlab::cli {

using CommandSetup = void (*)(CLI::App& root, int& exit_code);

std::vector<CommandSetup>& command_list();

// The database commands by name, for bin/attnlab (front.cpp), which adds every command in
// catalog order rather than in registration order.
void setup_query_commands(CLI::App& root, int& exit_code);  // query and trials
void setup_status_command(CLI::App& root, int& exit_code);
void setup_metrics_command(CLI::App& root, int& exit_code);

struct RegisterCommand {
  explicit RegisterCommand(CommandSetup setup) { command_list().push_back(setup); }
};

// Default database path: results/attnlab.sqlite relative to the current directory.
inline const char* default_db_path() { return "results/attnlab.sqlite"; }

// For commands that read results: false (exit code 1, a hint on stderr) when `db` is missing,
// so they never create an empty database by opening it.
inline bool database_exists(const std::string& db, int& exit_code) {
  if (std::filesystem::exists(db)) return true;
  std::cerr << "attnlab: no database at " << db << " (run a sweep first, or pass --db)\n";
  exit_code = 1;
  return false;
}

// Runs `body`, turning what it throws into "attnlab <command>: message" on stderr and an exit
// code: 2 for std::invalid_argument (bad input), 1 for anything else.
template <typename Body>
void report_errors(const char* command, int& exit_code, Body&& body) {
  try {
    body();
  } catch (const std::invalid_argument& e) {
    std::cerr << "attnlab " << command << ": " << e.what() << "\n";
    exit_code = 2;
  } catch (const std::exception& e) {
    std::cerr << "attnlab " << command << ": " << e.what() << "\n";
    exit_code = 1;
  }
}

}  // namespace attnlab::cli

#define ATTNLAB_COMMAND_CAT2(a, b) a##b
#define ATTNLAB_COMMAND_CAT(a, b) ATTNLAB_COMMAND_CAT2(a, b)
#define ATTNLAB_COMMAND(setup) \
  static ::attnlab::cli::RegisterCommand ATTNLAB_COMMAND_CAT(attnlab_command_, __LINE__)(setup)
