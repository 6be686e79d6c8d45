#pragma once
// Every subcommand's name and one-line description, in `attnlab --help` order. Both
// executables take their descriptions from here: bin/attnlab (front.cpp, no LibTorch: it runs
// the database commands itself and lists the others) and libexec/attnlab-torch (main.cpp,
// every command), so their --help cannot drift apart (tests/test_cli_front.sh compares them).
#include <cstring>
#include <stdexcept>
#include <string>

namespace attnlab::cli {

struct CommandInfo {
  const char* name;
  const char* description;
};

inline constexpr CommandInfo kCommandCatalog[] = {
    {"backends", "list attention backend plugins and their parameters"},
    {"check", "run the backend contract (shapes, causality, reference, kernel...) on a plugin"},
    {"compare", "ratios of every trial to the baseline backend at the same grid point"},
    {"keys", "every sweep key: type, allowed values, default, doc (docs/CONFIG.md)"},
    {"merge", "fold shard databases (attnlab submit's) into one, by trial key"},
    {"metrics", "every metric: name, unit, better direction, summary column, doc (docs/RESULTS.md)"},
    {"query", "run read-only SQL on the results database"},
    {"trials", "summary of a sweep in its kind's columns (without --sweep: one table per kind)"},
    {"report", "write a report (index.md, index.html, plots) for one sweep"},
    {"run", "run a TOML sweep; results go to SQLite"},
    {"_trial", "one trial in a worker's child process"},
    {"status", "each trial's state, from the database (and a Slurm sweep's shards)"},
    {"submit", "run a sweep as a Slurm job array, one shard database per task"},
    {"tokenize", "print the token ids of each stdin line, space-separated"},
};

// The commands bin/attnlab runs itself: they read the database (or the metrics' declarations)
// only, so they need no LibTorch.
inline bool is_database_command(const std::string& name) {
  return name == "query" || name == "trials" || name == "status" || name == "metrics";
}

inline const char* command_description(const char* name) {
  for (const auto& c : kCommandCatalog)
    if (std::strcmp(c.name, name) == 0) return c.description;
  throw std::logic_error(std::string("command '") + name + "' is missing from command_catalog.hpp");
}

}  // namespace attnlab::cli
