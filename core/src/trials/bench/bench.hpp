#pragma once
// The bench trial kind: one backend's attention op, timed and measured (measure.hpp). Its
// parts: schema.cpp (keys), tables.cpp (trial_summary columns, summary), run.cpp (one trial),
// report.cpp (report section, compare table).
#include "trials/kind.hpp"
#include "trials/schemas.hpp"

namespace attnlab::trials {

const KindTables& bench_tables();

class BenchKind final : public TrialKind {
 public:
  const KindTables& tables() const override { return bench_tables(); }
  KindSchema schema() const override { return bench_schema(); }
  bool measures_time() const override { return true; }
  void run(const TrialEnv& env, TrialSink& sink) const override;
  void report(report::Page& page) const override;
  ResultStore::Table compare(const report::SweepData& sweep, const report::BaselineSpec& baseline) const override;
};

}  // namespace attnlab::trials
