// attnlab backends: every plugin found, with its version, build, API version, description and
// parameters.
#include "commands.hpp"

#include <attnlab/registry.hpp>

#include <iostream>

namespace attnlab::cli {
namespace {

void setup(CLI::App& root, int& exit_code) {
  auto* cmd = root.add_subcommand("backends", command_description("backends"));
  cmd->callback([&exit_code] {
    PluginRegistry registry;
    registry.discover();
    for (const auto& name : registry.names()) {
      const auto& plugin = registry.get(name);
      const auto* d = plugin.descriptor;
      std::cout << name << " " << (plugin.version.empty() ? "(no version)" : plugin.version) << "  (API "
                << d->api_major << "." << d->api_minor << ")  " << d->description << "\n";
      std::cout << "    file: " << plugin.path << "  build " << plugin.build_id << "\n";
      for (const auto& p : plugin.schema) {
        std::cout << "    " << p.name << " = " << to_string(p.default_value) << "    " << p.allowed();
        if (!p.help.empty()) std::cout << "    " << p.help;
        std::cout << "\n";
      }
    }
    if (registry.names().empty()) {
      std::cerr << "attnlab: no backends found; searched:";
      for (const auto& dir : PluginRegistry::default_search_path()) std::cerr << " " << dir;
      std::cerr << "\n";
      exit_code = 1;
    }
    for (const auto& problem : registry.problems()) std::cerr << "attnlab: skipped " << problem << "\n";
  });
}

}  // namespace

ATTNLAB_COMMAND(setup);

}  // namespace attnlab::cli
