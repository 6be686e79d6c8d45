// attnlab command line: subcommands register themselves (see commands.hpp).
#include "commands.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <exception>
#include <iostream>

namespace attnlab::cli {
std::vector<CommandSetup>& command_list() {
  static std::vector<CommandSetup> commands;
  return commands;
}
}  // namespace attnlab::cli

int main(int argc, char** argv) {
  CLI::App app{"attnlab: attention research on LibTorch (sweeps, plugins, SQLite results)"};
  app.require_subcommand(1);
  bool verbose = false, quiet = false;
  app.add_flag("-v,--verbose", verbose, "debug logging on stderr");
  app.add_flag("-q,--quiet", quiet, "warnings and errors only");
  int exit_code = 0;
  for (auto setup : attnlab::cli::command_list()) setup(app, exit_code);
  // Logs go to stderr so that stdout carries only results (tables, csv, json, ids).
  spdlog::set_default_logger(spdlog::stderr_color_mt("attnlab"));
  try {
    app.parse_complete_callback([&] {
      spdlog::set_level(verbose ? spdlog::level::debug : quiet ? spdlog::level::warn : spdlog::level::info);
    });
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::cerr << "attnlab: error: " << e.what() << "\n";
    return exit_code ? exit_code : 1;
  }
  return exit_code;
}
