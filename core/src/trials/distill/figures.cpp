// The distill report's figures: block density against relative Δppl and against speedup per
// evaluation length (the frontier), the training curves, and each trial's blend weights and
// other backend statistics per training step.
#include "trials/distill/distill.hpp"

#include <algorithm>
#include <cstdio>
#include <tuple>

namespace attnlab::trials::distill {
namespace {

using report::Figure;
using report::Page;
using report::Plot;
using report::Series;
using report::TrialData;

// One method's points at T: (block density / causal, relative Δppl % with its interval) and
// (block density / causal, speedup).
void method_points(const Page& page, const Methods& methods, const std::string& method, std::int64_t T, Series& frontier,
                   Series& speedup) {
  for (const auto& t : page.sweep.trials) {
    if (methods.of.at(t.id) != method) continue;
    auto d = relative_block_density(t, T), r = deployed(t, T, "rel_delta_ppl");
    auto lo = deployed(t, T, "rel_delta_ppl_lo"), hi = deployed(t, T, "rel_delta_ppl_hi");
    if (d && r) {
      frontier.points.emplace_back(*d, 100 * *r);
      frontier.ranges.emplace_back(100 * lo.value_or(*r), 100 * hi.value_or(*r));
    }
    if (auto x = deployed(t, T, "speedup"); d && x) speedup.points.emplace_back(*d, *x);
  }
}

// A trial's stat/L<layer>/... curves: the blend weights (layer -> head -> metric names) and the
// other statistics (stat -> (layer, metric name)).
struct Statistics {
  std::map<int, std::map<int, std::vector<std::string>>> weights;
  std::map<std::string, std::vector<std::pair<int, std::string>>> others;
};

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
        panel.series.push_back(curve(page, t, metric.substr(metric.find('/', metric.find("weight/h") + 8) + 1), metric));
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

}  // namespace

void frontier_figures(Page& page, const std::vector<std::int64_t>& lengths, const Methods& methods) {
  const int columns = lengths.size() > 1 ? 2 : 1, width = lengths.size() > 1 ? 1300 : 900;
  Figure frontier{"density_vs_delta_ppl", "Block density vs relative Δppl", {}, columns, width, 620};
  Figure speed{"speedup_vs_density", "Speedup vs block density", {}, columns, width, 620};
  for (auto T : lengths) {
    Plot panel{"T = " + std::to_string(T), "block density relative to the causal layout (1 = dense)",
               "relative Δppl (%), 95% bootstrap interval", false, false, 10, {}};
    Plot e2e{"T = " + std::to_string(T), "block density relative to the causal layout (1 = dense)",
             "speedup over the dense teacher (end to end)", false, false, 10, {}};
    for (const auto& method : methods.in_order) {
      Series s{method, {}, "points pt 7 ps 1.2", false};
      Series sp{method, {}, "points pt 7 ps 1.4", false};
      method_points(page, methods, method, T, s, sp);
      panel.series.push_back(std::move(s));
      e2e.series.push_back(std::move(sp));
    }
    e2e.series.push_back(Series{"1 = as fast as the teacher", {{0.0, 1.0}, {1.05, 1.0}}, "lines", true});
    frontier.panels.push_back(std::move(panel));
    speed.panels.push_back(std::move(e2e));
  }
  page.figure(frontier, "The frontier: block density relative to causal vs relative Δppl, every trial in its deployed "
                        "mode with its 95% bootstrap interval; lower left is better (cheaper and closer to the teacher).");
  page.figure(speed, "End-to-end speedup of each student over the dense teacher (the faster of LibTorch's attention and "
                     "the causal kernel, same process) against its block density; above the line is faster.");
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
