// bin/attnlab: the command users type. It links no LibTorch, so the commands that only read
// the database (query, trials, status, metrics) and --help start in milliseconds; loading LibTorch
// alone takes ~0.6 s. Every other command, and anything it does not recognise, is handed to
// libexec/attnlab-torch (main.cpp: every command) by exec with argv unchanged: same pid, same
// arguments, same output and exit codes. The database commands are the very same code
// (cmd_query.cpp, cmd_status.cpp, table.cpp) in both executables.
#include "commands.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>

namespace attnlab::cli {
std::vector<CommandSetup>& command_list() {  // cmd_*.cpp register here; this main does not read it
  static std::vector<CommandSetup> commands;
  return commands;
}
}  // namespace attnlab::cli

namespace {

namespace fs = std::filesystem;
using namespace attnlab::cli;

// The first argument that is no option: the subcommand ("" when there is none). The root's
// options are all flags, so no option value can be mistaken for it.
std::string subcommand_of(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (argv[i][0] != '-') return argv[i];
  return "";
}

bool asks_for_help(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") return true;
  }
  return false;
}

[[noreturn]] void exec_torch_binary(char** argv) {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  const fs::path full = self.parent_path() / ATTNLAB_TORCH_BINARY;
  ::execv(full.c_str(), argv);
  std::cerr << "attnlab: cannot run " << full.string() << ": " << std::strerror(errno) << "\n";
  std::exit(127);
}

// The same root as main.cpp's: description, flags, and every subcommand in catalog order
// (those run elsewhere are listed only, for --help).
void add_commands(CLI::App& app, int& exit_code) {
  for (const auto& command : kCommandCatalog) {
    const std::string name = command.name;
    if (name == "query") setup_query_commands(app, exit_code);
    else if (name == "status") setup_status_command(app, exit_code);
    else if (name == "metrics") setup_metrics_command(app, exit_code);
    else if (name == "trials") continue;  // setup_query_commands added it
    else if (auto* listed = app.add_subcommand(name, command.description); name[0] == '_')
      listed->group("");  // hidden, as in main.cpp
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::string command = subcommand_of(argc, argv);
  if (!is_database_command(command) && !(command.empty() && asks_for_help(argc, argv))) exec_torch_binary(argv);
  CLI::App app{"attnlab: attention research on LibTorch (sweeps, plugins, SQLite results)"};
  app.require_subcommand(1);
  bool verbose = false, quiet = false;
  app.add_flag("-v,--verbose", verbose, "debug logging on stderr");
  app.add_flag("-q,--quiet", quiet, "warnings and errors only");
  int exit_code = 0;
  add_commands(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::cerr << "attnlab: error: " << e.what() << "\n";
    return exit_code ? exit_code : 1;
  }
  return exit_code;
}
