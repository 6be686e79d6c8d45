// The distill report's figures: block density against recall, relative Δppl, bits/byte and speedup per
// evaluation length (the frontier), the training curves, and each trial's blend weights and
// other backend statistics per training step.
#include "trials/distill/distill.hpp"

#include "base/metrics.hpp"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <tuple>

namespace attnlab::trials::distill {
namespace {

using report::Figure;
using report::Page;
using report::Plot;
using report::Series;
using report::TrialData;

// A trial's stat/L<layer>/... curves: the blend weights (layer -> head -> metric names) and the
// other statistics (stat -> (layer, metric name)).
struct Statistics {
  std::map<int, std::map<int, std::vector<std::string>>> weights;
  std::map<std::string, std::vector<std::pair<int, std::string>>> others;
};

// The candidate a stat/L<l>/weight/h<h>/<candidate> curve is for.
std::string candidate_of(const std::string& metric) { return metric.substr(metric.find('/', metric.find("weight/h") + 8) + 1); }

Statistics statistics_of(Page& page, const TrialData& t) {
  Statistics s;
  for (const auto& name : report::curve_names(page.store, t.id, "stat/L")) {
    const size_t slash = name.find('/', 6);
    if (slash == std::string::npos) continue;
    int layer = 0, head = 0;
    try {
      layer = std::stoi(name.substr(6, slash - 6));
    } catch (const std::exception&) {
      continue;
    }
    const std::string rest = name.substr(slash + 1);
    if (rest.rfind("weight/h", 0) == 0 && rest.find('/', 8) != std::string::npos &&
        std::sscanf(rest.c_str() + 8, "%d", &head) == 1)
      s.weights[layer][head].push_back(name);
    else
      s.others[rest].emplace_back(layer, name);
  }
  return s;
}

Series curve(Page& page, const TrialData& t, const std::string& title, const std::string& metric) {
  Series s{title, {}, "lines", false};
  for (const auto& [step, value] : report::load_curve(page.store, t.id, metric)) s.points.emplace_back(double(step), value);
  return s;
}

// stat/L<layer>/weight/h<head>/<candidate>: one figure per layer, one panel per head, one line
// per candidate mask.
void weight_figures(Page& page, const TrialData& t, const Statistics& stats) {
  if (!stats.weights.empty()) page.doc.heading(3, "Blend weights: " + t.name);
  for (const auto& [layer, heads] : stats.weights) {
    Figure f;
    f.name = "weights_trial" + std::to_string(t.id) + "_L" + std::to_string(layer);
    f.title = t.name + ": blend weights, layer " + std::to_string(layer);
    f.columns = heads.size() > 8 ? 4 : heads.size() > 1 ? 2 : 1;
    f.width = heads.size() > 1 ? 1300 : 900;
    f.height = std::max<int>(560, 300 * ((static_cast<int>(heads.size()) + f.columns - 1) / f.columns));
    for (const auto& [head, metrics] : heads) {
      Plot panel{"layer " + std::to_string(layer) + ", head " + std::to_string(head), "training step",
                 t.param("backend.mixing") == "normalized" ? "weight (softmax over candidates)"
                                                              : "weight (non-negative, unnormalized)",
                 false, false, 10, {}};
      for (const auto& metric : metrics)
        panel.series.push_back(curve(page, t, candidate_of(metric), metric));
      f.panels.push_back(std::move(panel));
    }
    page.figure(f, "Blend coefficient evolution, " + t.name + ", layer " + std::to_string(layer) +
                       ": one panel per head, one line per candidate mask.");
  }
}

// Other stat/L<layer>/<name>: one figure, one panel per statistic, one line per layer.
void other_statistics_figure(Page& page, const TrialData& t, const Statistics& stats) {
  if (stats.others.empty()) return;
  Figure f;
  f.name = "stats_trial" + std::to_string(t.id);
  f.title = t.name + ": backend statistics per layer";
  f.columns = stats.others.size() > 1 ? 2 : 1;
  f.width = stats.others.size() > 1 ? 1200 : 900;
  f.height = std::max<int>(560, 320 * ((static_cast<int>(stats.others.size()) + f.columns - 1) / f.columns));
  for (const auto& [stat, metrics] : stats.others) {
    Plot panel{stat, "training step", stat, false, false, 10, {}};
    for (const auto& [layer, metric] : metrics) panel.series.push_back(curve(page, t, "layer " + std::to_string(layer), metric));
    f.panels.push_back(std::move(panel));
  }
  page.figure(f, "Backend statistics of " + t.name + " per training step (one line per layer).");
}


// One quality or cost against block density: a panel per evaluation length, a series per
// method (its seeds as separate points), each point the deployed student, with its 95% bootstrap
// interval where the metric has one.
struct DensityFigure {
  std::string name, title, ylabel, field, caption;
  double scale = 1.0;           // e.g. 100 for a fraction shown in %
  bool interval = false;        // field_lo / field_hi recorded
  std::optional<double> guide;  // a dashed reference line at this y, with its label
  std::string guide_label;
};

void density_figure(Page& page, const std::vector<std::int64_t>& lengths, const Methods& methods, const DensityFigure& spec) {
  const int columns = lengths.size() > 1 ? 2 : 1, width = lengths.size() > 1 ? 1300 : 900;
  Figure figure{spec.name, spec.title, {}, columns, width, 620};
  bool any = false;
  for (auto T : lengths) {
    Plot panel{"T = " + std::to_string(T), "block density relative to the causal layout (1 = dense)", spec.ylabel,
               false, false, 10, {}};
    for (const auto& method : methods.in_order) {
      Series series{method, {}, "points pt 7 ps 1.2", false};
      for (const auto& t : page.sweep.trials) {
        if (methods.of.at(t.id) != method) continue;
        const auto d = relative_block_density(t, T), y = deployed(t, T, spec.field);
        if (!d || !y) continue;
        series.points.emplace_back(*d, spec.scale * *y);
        if (spec.interval)
          series.ranges.emplace_back(spec.scale * deployed(t, T, spec.field + "_lo").value_or(*y),
                                     spec.scale * deployed(t, T, spec.field + "_hi").value_or(*y));
      }
      any = any || !series.points.empty();
      panel.series.push_back(std::move(series));
    }
    if (spec.guide) panel.series.push_back(Series{spec.guide_label, {{0.0, *spec.guide}, {1.05, *spec.guide}}, "lines", true});
    figure.panels.push_back(std::move(panel));
  }
  if (any) page.figure(figure, spec.caption);
}

}  // namespace

void frontier_figures(Page& page, const std::vector<std::int64_t>& lengths, const Methods& methods) {
  // Only the lengths with quality (cost-only lengths have speed and density alone).
  std::vector<std::int64_t> quality;
  std::optional<double> chance;
  for (auto T : lengths)
    for (const auto& t : page.sweep.trials) {
      if (!deployed(t, T, "student_bpb")) continue;
      if (!chance) chance = t.final_metric(metrics::eval_name(T, "recall_chance"));
      quality.push_back(T);
      break;
    }
  const std::string x_note = " Every point is one trial (one seed) as deployed; x is the fraction of the causal tiles it computed.";
  density_figure(page, quality, methods,
                 {"recall_vs_density", "Long-range recall vs block density", "recall (exact value at the query), 95% bootstrap interval",
                  "recall_acc",
                  "Recall of the held-out records (every query >= T/2 from its answer) against block density; upper left is "
                  "better: recall kept at few tiles." + x_note,
                  1.0, true, chance, "chance"});
  density_figure(page, quality, methods,
                 {"density_vs_delta_ppl", "Block density vs relative Δppl", "relative Δppl (%), 95% bootstrap interval",
                  "rel_delta_ppl",
                  "The frontier: block density relative to causal vs relative Δppl on plain text; lower left is better "
                  "(cheaper and closer to the teacher)." + x_note,
                  100.0, true, std::nullopt, ""});
  density_figure(page, quality, methods,
                 {"bpb_vs_density", "Bits per byte vs block density", "bits per byte on plain held-out text (lower is better)",
                  "student_bpb", "Bits per byte of each student on plain windows (no records) against block density." + x_note,
                  1.0, false, std::nullopt, ""});
  density_figure(page, lengths, methods,
                 {"speedup_vs_density", "Speedup vs block density", "speedup over the dense teacher (end to end)", "speedup",
                  "End-to-end speedup of each student over the dense teacher (the faster of LibTorch's attention and the "
                  "causal kernel, same process) against its block density; above the line is faster." + x_note,
                  1.0, false, 1.0, "1 = as fast as the teacher"});
}

std::map<std::pair<int, int>, std::string> final_head_choices(Page& page, const TrialData& t) {
  std::map<std::pair<int, int>, std::string> choice;
  std::map<std::pair<int, int>, double> largest;
  for (const auto& [layer, heads] : statistics_of(page, t).weights)
    for (const auto& [head, metrics] : heads)
      for (const auto& metric : metrics) {
        const auto points = report::load_curve(page.store, t.id, metric);
        if (points.empty()) continue;
        const auto key = std::make_pair(layer, head);
        if (largest.count(key) && largest[key] >= points.back().second) continue;
        largest[key] = points.back().second;
        choice[key] = candidate_of(metric);
      }
  return choice;
}

void training_curves(Page& page) {
  const std::vector<std::tuple<std::string, std::string, std::string>> curves = {
      {"train/loss", "Training loss per step", "total loss (CE, KL and regularizer terms)"},
      {"train/kl", "KL(teacher‖student) per step", "KL (nats per token)"}};
  for (const auto& [metric, title, ylabel] : curves) {
    Plot plot{title, "training step", ylabel, false, false, 10, {}};
    for (const auto& t : page.sweep.trials) plot.series.push_back(curve(page, t, t.name, metric));
    page.figure(Figure{report::file_stem(metric), "", {plot}, 1, 900, 560}, title + ", one line per trial.");
  }
}

void backend_statistics(Page& page) {
  for (const auto& t : page.sweep.trials) {
    const Statistics stats = statistics_of(page, t);
    weight_figures(page, t, stats);
    other_statistics_figure(page, t, stats);
  }
}

}  // namespace attnlab::trials::distill
