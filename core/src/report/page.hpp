#pragma once
// `attnlab report`'s page: one sweep of the results database as index.md and index.html with
// the same content. The page has the sections every kind shares (header, run context, samples,
// failures, the sweep file) and the helpers a kind's own section uses (figures, grouping by
// axes, backend variants); each trial kind writes its section (trials/<kind>/report.cpp), and
// trials/report.cpp puts the page together. docs/REPORTS.md describes every table and figure.
#include "report/compare.hpp"
#include "report/document.hpp"
#include "report/gnuplot.hpp"
#include "report/sweep_data.hpp"

#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <utility>
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

// Number formats shared by the tables (docs/REPORTS.md lists them): printf-style `format`
// applied to the value, "" when there is none.
std::string format_number(const char* format, std::optional<double> value);
// `text` as a number, NaN when it is none.
double as_number(const std::string& text);
std::string join(const std::vector<std::string>& parts, const std::string& separator);

using TrialGroups = std::vector<std::pair<std::string, std::vector<const TrialData*>>>;

class Page {
 public:
  // Loads the sweep; throws std::runtime_error for an unknown sweep or a missing gnuplot (when
  // plots are on). Creates the output directory.
  Page(ResultStore& store, const ReportOptions& options);

  ResultStore& store;
  const ReportOptions& options;
  SweepData sweep;
  BaselineSpec baseline;
  bool has_baseline = false;  // some trial is of the baseline's backend
  Document doc;

  // Renders a figure into plots/ and adds it to the page (nothing when it has no data or plots are off).
  void figure(const Figure& f, const std::string& caption);
  // Grid axes that split tables and figures: varying, not the backend's, not `except`.
  std::vector<std::string> group_axes(const std::set<std::string>& except) const;
  // The trials grouped by their values of `axes`, groups in order of first appearance.
  TrialGroups grouped(const std::vector<std::string>& axes) const;
  // The backend variants (SweepData::variant_label) in order of first appearance.
  std::vector<std::string> variants() const;

  // The sections every kind shares, in the order a page has them around the kind's own.
  void header();
  void purpose();  // each sweep file's opening comment: what it asks, and any criteria stated before it ran
  void run_context();
  void samples();  // teacher and student generations side by side, where the trials have any
  void failures();
  void sweep_file();

  // Writes index.md and index.html; returns every file written.
  ReportFiles write();

 private:
  std::string name_placeholders() const;  // "?1, ?2, ...": one per sweep name
  ResultStore::Table sweep_sources() const;  // (path, source) of each sweep read, as stored at its last run
  std::optional<Gnuplot> gnuplot_;
  ReportFiles files_;
};

}  // namespace attnlab::report
