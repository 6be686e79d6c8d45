#pragma once
// `attnlab report` and `attnlab compare` of one sweep: the page's shared sections around its
// kind's own (report/page.hpp), and its kind's compare table.
#include "report/page.hpp"

namespace attnlab::trials {

// index.md and index.html: header, run context, the kind's section, failed trials, the sweep
// file. Throws std::runtime_error for an unknown sweep or a missing gnuplot (when plots are on),
// std::invalid_argument for a sweep of an unknown kind.
report::ReportFiles write_report(ResultStore& store, const report::ReportOptions& options);

// The sweep's kind's compare table (TrialKind::compare).
ResultStore::Table compare_table(const report::SweepData& sweep, const report::BaselineSpec& baseline);

}  // namespace attnlab::trials
