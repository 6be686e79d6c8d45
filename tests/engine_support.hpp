#pragma once
// What the engine-level tests (test_engine, test_research_loop) share on top of support.hpp:
// the CLI with the test plugins (the fault backend) on its search path, writing a sweep file,
// and reading one cell of a results database.
#include "runtime/store.hpp"

#include "catch.hpp"

#include "support.hpp"

#include <filesystem>
#include <fstream>
#include <string>

namespace attnlab::test {

// `attnlab` with the test plugins (fault) on the search path and the fault backend's
// execution log at `log`; `env` is prefixed as more VAR=value assignments.
inline std::string cli_with_faults(const std::filesystem::path& log, const std::string& env = "") {
  return env + " ATTNLAB_PLUGIN_PATH=" + std::string(ATTNLAB_BINARY_DIR) +
         "/test_plugins ATTNLAB_FAULT_LOG=" + log.string() + " " + cli();
}

// Writes `text` to `path`; returns the path, for building command lines.
inline std::string write(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path) << text;
  return path.string();
}

// The single cell `sql` selects ("NULL" for a null); fails the test unless it is one row.
inline std::string cell(ResultStore& store, const std::string& sql) {
  const auto t = store.query(sql);
  REQUIRE(t.rows.size() == 1);
  return t.rows[0][0].value_or("NULL");
}

}  // namespace attnlab::test
