#pragma once
// The distill trial kind: a GPT-2 student (the teacher with the trial's attention) distilled
// against its dense teacher, then evaluated (model/distill.hpp). Its parts: schema.cpp (keys),
// tables.cpp (views, summary, findings), run.cpp (one trial), report.cpp and figures.cpp
// (report section, compare table).
#include "trials/kind.hpp"
#include "trials/schemas.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace attnlab::trials {

const KindTables& distill_tables();

class DistillKind final : public TrialKind {
 public:
  const KindTables& tables() const override { return distill_tables(); }
  KindSchema schema() const override { return distill_schema(); }
  bool measures_time() const override { return false; }
  void run(const TrialEnv& env, TrialSink& sink) const override;
  void report(report::Page& page) const override;
  ResultStore::Table compare(const report::SweepData& sweep, const report::BaselineSpec& baseline) const override;
};

namespace distill {

// Evaluation lengths T that have eval/T<T>/... metrics in the sweep, ascending.
std::vector<std::int64_t> eval_lengths(const report::SweepData& sweep);
// The metric of the mode a student is deployed in (metrics::deployed).
std::optional<double> deployed(const report::TrialData& t, std::int64_t T, const std::string& field);
// Block density as a fraction of the causal layout's at the same T and tile.
std::optional<double> relative_block_density(const report::TrialData& t, std::int64_t T);

// Each trial's method by trial id (seeds of one method form one series), and the methods in
// order of first appearance.
struct Methods {
  std::map<std::int64_t, std::string> of;
  std::vector<std::string> in_order;
};
Methods methods_of(const report::SweepData& sweep);

// The figures (figures.cpp): block density against recall, Δppl, bits/byte and speedup per evaluation
// length, the training curves, and each trial's blend weights and backend statistics.
void frontier_figures(report::Page& page, const std::vector<std::int64_t>& lengths, const Methods& methods);
// A blend trial's deployed choice per (layer, head): the candidate with the largest weight at
// the last logged step (the search: its one-hot choice); empty for a backend without weights.
std::map<std::pair<int, int>, std::string> final_head_choices(report::Page& page, const report::TrialData& t);
void training_curves(report::Page& page);
void backend_statistics(report::Page& page);

}  // namespace distill
}  // namespace attnlab::trials
