#include "trials/report.hpp"

#include "trials/kind.hpp"

namespace attnlab::trials {

report::ReportFiles write_report(ResultStore& store, const report::ReportOptions& options) {
  report::Page page(store, options);
  const TrialKind& kind = trial_kind(page.sweep.kind);
  page.header();
  page.purpose();
  page.run_context();
  kind.report(page);
  page.failures();
  page.sweep_file();
  return page.write();
}

ResultStore::Table compare_table(const report::SweepData& sweep, const report::BaselineSpec& baseline) {
  return trial_kind(sweep.kind).compare(sweep, baseline);
}

}  // namespace attnlab::trials
