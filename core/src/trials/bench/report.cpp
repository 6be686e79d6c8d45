// The bench kind's report section (per group of the varying axes: a table of every trial, latency
// and memory against the sequence length, time against block density) and its compare table
// (median time and peak memory, each with its ratio to the baseline trial).
#include "trials/bench/bench.hpp"
#include "trials/bench/thresholds.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

namespace attnlab::trials {
namespace {

using report::as_number;
using report::format_number;
using report::Page;
using report::TrialData;

const char* const kMedian = "time/median_ms";
const char* const kBlockDensity = "density/block";

bool noisy(const TrialData* t) { return t && t->final_metric("time/cv").value_or(0.0) > bench::kNoisyCv; }

std::string spread(const TrialData& t) {
  const auto cv = t.final_metric("time/cv");
  return format_number("%.1f%%", cv ? std::optional<double>(100 * *cv) : std::nullopt) + (noisy(&t) ? " !" : "");
}

// The group's trials by variant (in order of first appearance), then by sequence length.
std::vector<const TrialData*> by_variant(const Page& page, const std::vector<const TrialData*>& trials) {
  std::vector<const TrialData*> sorted = trials;
  const auto order = page.variants();
  auto rank = [&](const TrialData* t) {
    return std::find(order.begin(), order.end(), page.sweep.variant_label(*t)) - order.begin();
  };
  std::stable_sort(sorted.begin(), sorted.end(), [&](const TrialData* a, const TrialData* b) {
    if (rank(a) != rank(b)) return rank(a) < rank(b);
    return as_number(a->param("seq_len")) < as_number(b->param("seq_len"));
  });
  return sorted;
}

void results_table(Page& page, const std::vector<const TrialData*>& sorted) {
  std::vector<std::string> header = {"backend", "seq_len", "status", "median ms", "spread", "peak MiB", "GFLOP/s",
                                     "block density"};
  if (page.has_baseline) header.push_back("ratio to " + page.options.baseline);
  std::vector<std::vector<std::string>> rows;
  for (const auto* t : sorted) {
    std::vector<std::string> row = {page.sweep.variant_label(*t), t->param("seq_len"), t->status,
                                    format_number("%.3f", t->final_metric(kMedian)), spread(*t),
                                    format_number("%.1f", t->final_metric("memory/peak_tensor_mib")),
                                    format_number("%.2f", t->final_metric("flops/gflops")),
                                    format_number("%.3f", t->final_metric(kBlockDensity))};
    if (page.has_baseline) {
      const TrialData* base = report::find_baseline(page.sweep, page.baseline, *t);
      row.push_back(format_number("%.3f", report::ratio(t->final_metric(kMedian),
                                                        base ? base->final_metric(kMedian) : std::nullopt)));
    }
    rows.push_back(std::move(row));
  }
  page.doc.table(std::move(header), std::move(rows));
}

// Latency and peak memory against the sequence length, one line per variant, log-log.
void length_figures(Page& page, const std::string& group, const std::vector<const TrialData*>& sorted) {
  const std::string suffix = group.empty() ? "" : " (" + group + ")";
  report::Plot latency{"Latency vs sequence length" + suffix, "sequence length T (tokens)", "median time per call (ms)",
                       true, true, 2, {}};
  report::Plot memory{"Peak tensor memory vs sequence length" + suffix, "sequence length T (tokens)",
                      "peak live tensor memory (MiB)", true, true, 2, {}};
  for (const auto& label : page.variants()) {
    report::Series time_series{label, {}, "linespoints", false}, memory_series{label, {}, "linespoints", false};
    for (const auto* t : sorted) {
      if (t->status != "done" || page.sweep.variant_label(*t) != label) continue;
      const double T = as_number(t->param("seq_len"));
      if (auto ms = t->final_metric(kMedian)) time_series.points.emplace_back(T, *ms);
      if (auto mib = t->final_metric("memory/peak_tensor_mib")) memory_series.points.emplace_back(T, *mib);
    }
    latency.series.push_back(std::move(time_series));
    memory.series.push_back(std::move(memory_series));
  }
  const std::string stem = group.empty() ? "" : "_" + group;
  page.figure(report::Figure{"latency" + stem, "", {latency}, 1, 900, 560},
              "Latency vs sequence length" + suffix + ", log-log: a slope of 2 is quadratic in T.");
  page.figure(report::Figure{"memory" + stem, "", {memory}, 1, 900, 560},
              "Peak tensor memory vs sequence length" + suffix + ", log-log.");
}

// Only worth a figure when some sequence length has trials at different block densities.
bool densities_differ(const std::vector<const TrialData*>& trials) {
  std::map<std::string, std::set<double>> densities;
  for (const auto* t : trials)
    if (t->status == "done")
      if (auto d = t->final_metric(kBlockDensity)) densities[t->param("seq_len")].insert(*d);
  return std::any_of(densities.begin(), densities.end(), [](const auto& e) { return e.second.size() > 1; });
}

// The fastest trial at the largest block density of sequence length T (the ideal line's
// reference when there is no baseline).
const TrialData* densest(const std::vector<const TrialData*>& trials, const std::string& T) {
  const TrialData* reference = nullptr;
  for (const auto* t : trials) {
    if (t->status != "done" || t->param("seq_len") != T) continue;
    auto d = t->final_metric(kBlockDensity), ms = t->final_metric(kMedian);
    if (!d || !ms) continue;
    auto rd = reference ? reference->final_metric(kBlockDensity) : std::nullopt;
    if (!reference || *d > *rd + 1e-12 || (std::abs(*d - *rd) <= 1e-12 && *ms < *reference->final_metric(kMedian)))
      reference = t;
  }
  return reference;
}

// One panel: every variant's trials at T, and the ideal (time proportional to block density)
// through the reference point: the baseline's trial at T, or densest().
report::Plot density_panel(const Page& page, const std::vector<const TrialData*>& trials, const std::string& T) {
  report::Plot panel{"T = " + T, "block density (fraction of tiles computed)", "median time per call (ms)", false,
                     false, 10, {}};
  const TrialData* reference = nullptr;
  double max_x = 0;
  for (const auto& label : page.variants()) {
    report::Series s{label, {}, "points pt 7 ps 1.5", false};
    for (const auto* t : trials) {
      if (t->status != "done" || t->param("seq_len") != T || page.sweep.variant_label(*t) != label) continue;
      auto d = t->final_metric(kBlockDensity);
      auto ms = t->final_metric(kMedian);
      if (!d || !ms) continue;
      s.points.emplace_back(*d, *ms);
      max_x = std::max(max_x, *d);
      if (!reference && page.has_baseline) reference = report::find_baseline(page.sweep, page.baseline, *t);
    }
    panel.series.push_back(std::move(s));
  }
  if (!reference) reference = densest(trials, T);
  if (reference) {
    auto d = reference->final_metric(kBlockDensity), ms = reference->final_metric(kMedian);
    if (d && ms && *d > 0) {
      const double x_end = std::max(max_x, *d);
      panel.series.push_back(report::Series{"ideal: time ∝ block density from " + page.sweep.variant_label(*reference),
                                            {{0.0, 0.0}, {x_end, *ms * x_end / *d}}, "lines", true});
    }
  }
  return panel;
}

// Time vs block density, one panel per sequence length, with the ideal line.
void density_figure(Page& page, const std::string& group, const std::vector<const TrialData*>& trials) {
  if (!densities_differ(trials)) return;
  std::vector<std::string> lengths;
  for (const auto* t : trials)
    if (std::find(lengths.begin(), lengths.end(), t->param("seq_len")) == lengths.end())
      lengths.push_back(t->param("seq_len"));
  std::sort(lengths.begin(), lengths.end(),
            [](const std::string& a, const std::string& b) { return as_number(a) < as_number(b); });
  report::Figure f;
  const std::string suffix = group.empty() ? "" : " (" + group + ")";
  f.name = "density" + std::string(group.empty() ? "" : "_" + group);
  f.title = "Time vs block density" + suffix;
  f.columns = lengths.size() > 1 ? 2 : 1;
  f.width = lengths.size() > 1 ? 1200 : 900;
  f.height = lengths.size() > 2 ? 900 : 560;
  for (const auto& T : lengths) f.panels.push_back(density_panel(page, trials, T));
  page.figure(f, "Time vs block density" + suffix +
                     ": points above the dashed ideal line pay overhead beyond the tiles they compute.");
}

}  // namespace

void BenchKind::report(Page& page) const {
  const auto varying = page.sweep.varying_params();
  const bool seq_len_varies = std::find(varying.begin(), varying.end(), "seq_len") != varying.end();
  page.doc.heading(2, "Results");
  page.doc.paragraph(
      "One row per trial: median wall time per call over the timed repeats, spread = coefficient of "
      "variation (marked ! above " + format_number("%.0f%%", 100 * bench::kNoisyCv) +
      ": a noisy row, its ratios suspect), peak MiB = peak live tensor memory above the inputs, GFLOP/s = useful "
      "FLOPs (allowed query-key pairs) per second" +
      std::string(page.has_baseline ? ", ratio = median time over `" + page.options.baseline +
                                          "`'s at the same grid point (below 1 is faster)"
                                    : "") +
      ".");
  for (const auto& [group, trials] : page.grouped(page.group_axes({"seq_len"}))) {
    if (!group.empty()) page.doc.heading(3, group);
    const auto sorted = by_variant(page, trials);
    results_table(page, sorted);
    if (seq_len_varies) length_figures(page, group, sorted);
    density_figure(page, group, trials);
  }
}

ResultStore::Table BenchKind::compare(const report::SweepData& sweep, const report::BaselineSpec& baseline) const {
  const std::string flag = "noisy (cv > " + format_number("%.0f%%", 100 * bench::kNoisyCv) + ")";
  ResultStore::Table table;
  table.columns = {"trial_id", "trial", "backend", "status", "baseline_trial_id", "median_ms", "ratio_median_ms",
                   "peak_mib", "ratio_peak_mib", "flag"};
  for (const auto& t : sweep.trials) {
    const TrialData* base = report::find_baseline(sweep, baseline, t);
    auto value = [&](const TrialData* from, const char* metric) -> std::optional<double> {
      return from ? from->final_metric(metric) : std::nullopt;
    };
    using report::number;
    using report::ratio;
    // Either side's repeats spread by more than kNoisyCv of their mean: the ratio is suspect.
    table.rows.push_back({std::to_string(t.id), t.name, t.backend, t.status,
                          base ? std::optional<std::string>(std::to_string(base->id)) : std::nullopt,
                          number(t.final_metric(kMedian)), number(ratio(t.final_metric(kMedian), value(base, kMedian))),
                          number(t.final_metric("memory/peak_tensor_mib")),
                          number(ratio(t.final_metric("memory/peak_tensor_mib"), value(base, "memory/peak_tensor_mib"))),
                          noisy(&t) || noisy(base) ? std::optional<std::string>(flag) : std::nullopt});
  }
  return table;
}

}  // namespace attnlab::trials
