#pragma once
// `attnlab report`: one sweep of the results database as a page a person can read —
// index.md and index.html with the same content: run context, result tables per sweep kind,
// gnuplot figures (PNG + SVG, with their .dat and .gp beside them in plots/), failed trials
// with their errors, teacher/student samples side by side, and the sweep file itself.
// docs/REPORTS.md describes every table and figure.
#include "runtime/store.hpp"

#include <filesystem>
#include <string>
#include <vector>

namespace attnlab::report {

struct ReportOptions {
  std::string sweep;
  std::filesystem::path out;    // directory; created if missing
  std::string baseline = "dense";  // "ratio to" column and the ideal line's reference (see compare.hpp)
  bool plots = true;            // false: tables only, gnuplot not needed
};

struct ReportFiles {
  std::filesystem::path markdown, html;
  std::vector<std::filesystem::path> pngs, svgs;
};

// Throws std::runtime_error for an unknown sweep or a missing gnuplot (when plots are on).
ReportFiles write_report(ResultStore& store, const ReportOptions& options);

// Number formats shared by the tables (docs/REPORTS.md lists them): printf-style
// `format` applied to the value, "" when there is none.
std::string format_number(const char* format, std::optional<double> value);

}  // namespace attnlab::report
