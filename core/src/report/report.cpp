#include "report/report.hpp"

#include "base/metrics.hpp"
#include "base/text.hpp"

#include "report/compare.hpp"
#include "report/document.hpp"
#include "report/gnuplot.hpp"
#include "report/sweep_data.hpp"

#include <attnlab/density.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>
#include <set>
#include <stdexcept>

namespace attnlab::report {
namespace fs = std::filesystem;

std::string format_number(const char* format, std::optional<double> value) {
  if (!value || !std::isfinite(*value)) return "";
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, format, *value);
  return buffer;
}

namespace {

std::string utc_now() { return base::utc_now("%Y-%m-%d %H:%M:%S UTC"); }

std::string join(const std::vector<std::string>& parts, const std::string& separator) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : separator) + p;
  return out;
}

double as_number(const std::string& text) {
  try {
    return std::stod(text);
  } catch (const std::exception&) {
    return std::nan("");
  }
}

// Everything the sections below share: the data, where figures go, and what they made.
struct Builder {
  ResultStore& store;
  const ReportOptions& options;
  SweepData sweep;
  BaselineSpec baseline;
  bool has_baseline = false;
  std::optional<Gnuplot> gnuplot;
  Document doc;
  ReportFiles files;

  Builder(ResultStore& store_, const ReportOptions& options_)
      : store(store_), options(options_), sweep(load_sweep_data(store_, options_.sweep)),
        baseline(parse_baseline(options_.baseline)) {}

  // Renders a figure into plots/ and adds it to the page (nothing when it has no data).
  void figure(const Figure& f, const std::string& caption) {
    if (!gnuplot) return;
    if (!gnuplot->render(f, options.out / "plots")) return;
    const std::string stem = "plots/" + file_stem(f.name);
    doc.image(caption, stem + ".png", stem + ".svg");
    files.pngs.push_back(options.out / (stem + ".png"));
    files.svgs.push_back(options.out / (stem + ".svg"));
  }

  // Grid axes that split tables and figures: varying, not the backend's, not `except`.
  std::vector<std::string> group_axes(const std::set<std::string>& except) const {
    std::vector<std::string> out;
    for (const auto& name : sweep.varying_params())
      if (!is_backend_param(name) && !except.count(name)) out.push_back(name);
    return out;
  }
  static std::string group_of(const TrialData& t, const std::vector<std::string>& axes) {
    std::vector<std::string> parts;
    for (const auto& a : axes) parts.push_back(a + "=" + t.param(a));
    return join(parts, ", ");
  }
  // Groups in order of first appearance.
  std::vector<std::pair<std::string, std::vector<const TrialData*>>> grouped(const std::vector<std::string>& axes) const {
    std::vector<std::pair<std::string, std::vector<const TrialData*>>> out;
    for (const auto& t : sweep.trials) {
      const std::string g = group_of(t, axes);
      auto it = std::find_if(out.begin(), out.end(), [&](const auto& e) { return e.first == g; });
      if (it == out.end()) out.push_back({g, {&t}});
      else it->second.push_back(&t);
    }
    return out;
  }
  std::vector<std::string> variants() const {
    std::vector<std::string> out;
    for (const auto& t : sweep.trials) {
      const auto label = sweep.variant_label(t);
      if (std::find(out.begin(), out.end(), label) == out.end()) out.push_back(label);
    }
    return out;
  }

  // "?1, ?2, ...": one placeholder per sweep name, bound to sweep.names.
  std::string name_placeholders() const {
    std::vector<std::string> marks;
    for (std::size_t i = 1; i <= sweep.names.size(); ++i) marks.push_back("?" + std::to_string(i));
    return join(marks, ", ");
  }

  void header();
  void run_context();
  void bench();
  void bench_density_figure(const std::string& group, const std::vector<const TrialData*>& trials);
  void distill();
  void teacher_gates();
  void distill_recall(std::int64_t T);
  void distill_curves();
  void blend_weights();
  void samples();
  void failures();
  void sweep_file();
};

void Builder::header() {
  doc.heading(1, "attnlab report: " + sweep.name);
  std::map<std::string, int> by_status;
  for (const auto& t : sweep.trials) by_status[t.status]++;
  std::vector<std::string> counts;
  for (const auto& [status, n] : by_status) counts.push_back(std::to_string(n) + " " + status);
  doc.paragraph("Sweep `" + sweep.name + "` (kind `" + sweep.kind + "`): " + std::to_string(sweep.trials.size()) +
                " trials (" + join(counts, ", ") + "). Generated " + utc_now() + ".");
  std::vector<std::string> fixed;
  const auto varying = sweep.varying_params();
  std::map<std::string, std::string> common;
  if (!sweep.trials.empty())
    for (const auto& [name, value] : sweep.trials.front().params)
      if (!is_backend_param(name) && std::find(varying.begin(), varying.end(), name) == varying.end())
        fixed.push_back(name + "=" + value);
  if (!fixed.empty()) doc.paragraph("Fixed for every trial: " + join(fixed, ", ") + ".");
}

void Builder::run_context() {
  auto runs = store.query(
      "SELECT id, started_at, git_sha, git_dirty, attnlab_version, torch_version, blas, threads, cpu, gpu, hostname, "
      "sgemm_gflops FROM runs WHERE id IN (SELECT DISTINCT t.run_id FROM trials t JOIN sweeps s ON s.id = t.sweep_id "
      "WHERE s.name IN (" + name_placeholders() + ")) ORDER BY id",
      sweep.names);
  doc.heading(2, "Run context");
  if (runs.rows.empty()) {
    doc.paragraph("No run has recorded a trial of this sweep yet.");
    return;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : runs.rows) {
    auto get = [&](size_t i) { return r[i].value_or(""); };
    std::string git = get(2).substr(0, 12);
    if (get(3) == "1") git += " (dirty)";
    std::string cpu = get(8);
    if (!get(9).empty()) cpu += "; GPU " + get(9);
    rows.push_back({get(0), get(1), git, get(4), get(5), get(6), get(7), cpu, get(10),
                    format_number("%.1f", r[11] ? std::optional<double>(as_number(*r[11])) : std::nullopt)});
  }
  doc.table({"run", "started (UTC)", "git", "attnlab", "LibTorch", "BLAS", "threads", "CPU", "host", "sgemm GFLOP/s"},
            std::move(rows));
}

void Builder::bench() {
  const auto axes = group_axes({"seq_len"});
  const bool seq_len_varies = [&] {
    const auto v = sweep.varying_params();
    return std::find(v.begin(), v.end(), "seq_len") != v.end();
  }();
  doc.heading(2, "Results");
  doc.paragraph("One row per trial: median wall time per call over the timed repeats, spread = coefficient of "
                "variation (marked ! above 10%: a noisy row, its ratios suspect), peak MiB = peak live tensor memory above the inputs, GFLOP/s = useful FLOPs (allowed "
                "query-key pairs) per second" +
                std::string(has_baseline ? ", ratio = median time over `" + options.baseline +
                                               "`'s at the same grid point (below 1 is faster)"
                                         : "") + ".");
  for (const auto& [group, trials] : grouped(axes)) {
    if (!group.empty()) doc.heading(3, group);
    std::vector<const TrialData*> sorted = trials;
    const auto order = variants();
    auto rank = [&](const TrialData* t) {
      return std::find(order.begin(), order.end(), sweep.variant_label(*t)) - order.begin();
    };
    std::stable_sort(sorted.begin(), sorted.end(), [&](const TrialData* a, const TrialData* b) {
      if (rank(a) != rank(b)) return rank(a) < rank(b);
      return as_number(a->param("seq_len")) < as_number(b->param("seq_len"));
    });
    std::vector<std::string> header = {"backend", "seq_len", "status", "median ms", "spread", "peak MiB", "GFLOP/s",
                                       "block density"};
    if (has_baseline) header.push_back("ratio to " + options.baseline);
    std::vector<std::vector<std::string>> rows;
    for (const auto* t : sorted) {
      std::vector<std::string> row = {
          sweep.variant_label(*t), t->param("seq_len"), t->status,
          format_number("%.3f", t->final_metric("time/median_ms")),
          format_number("%.1f%%", t->final_metric("time/cv") ? std::optional<double>(100 * *t->final_metric("time/cv"))
                                                             : std::nullopt) +
              (t->final_metric("time/cv").value_or(0.0) > 0.1 ? " !" : ""),
          format_number("%.1f", t->final_metric("memory/peak_tensor_mib")),
          format_number("%.2f", t->final_metric("flops/gflops")),
          format_number("%.3f", t->final_metric("density/block"))};
      if (has_baseline) {
        const TrialData* base = find_baseline(sweep, baseline, *t);
        row.push_back(format_number(
            "%.3f", ratio(t->final_metric("time/median_ms"), base ? base->final_metric("time/median_ms") : std::nullopt)));
      }
      rows.push_back(std::move(row));
    }
    doc.table(std::move(header), std::move(rows));

    if (!seq_len_varies) {
      bench_density_figure(group, trials);
      continue;
    }
    const std::string suffix = group.empty() ? "" : " (" + group + ")";
    Plot latency{"Latency vs sequence length" + suffix, "sequence length T (tokens)", "median time per call (ms)",
                 true, true, 2, {}};
    Plot memory{"Peak tensor memory vs sequence length" + suffix, "sequence length T (tokens)",
                "peak live tensor memory (MiB)", true, true, 2, {}};
    for (const auto& label : order) {
      Series time_series{label, {}, "linespoints", false}, memory_series{label, {}, "linespoints", false};
      for (const auto* t : sorted) {
        if (t->status != "done" || sweep.variant_label(*t) != label) continue;
        const double T = as_number(t->param("seq_len"));
        if (auto ms = t->final_metric("time/median_ms")) time_series.points.emplace_back(T, *ms);
        if (auto mib = t->final_metric("memory/peak_tensor_mib")) memory_series.points.emplace_back(T, *mib);
      }
      latency.series.push_back(std::move(time_series));
      memory.series.push_back(std::move(memory_series));
    }
    const std::string stem = group.empty() ? "" : "_" + group;
    figure(Figure{"latency" + stem, "", {latency}, 1, 900, 560},
           "Latency vs sequence length" + suffix + ", log-log: a slope of 2 is quadratic in T.");
    figure(Figure{"memory" + stem, "", {memory}, 1, 900, 560}, "Peak tensor memory vs sequence length" + suffix + ", log-log.");
    bench_density_figure(group, trials);
  }
}

// Time vs block density, one panel per sequence length, with the ideal: time proportional to
// block density, through the reference point (the baseline's trial at that length, or the
// fastest trial at the largest block density when there is no baseline).
void Builder::bench_density_figure(const std::string& group, const std::vector<const TrialData*>& trials) {
  // Only worth a figure when some sequence length has trials at different block densities.
  std::map<std::string, std::set<double>> densities;
  for (const auto* t : trials)
    if (t->status == "done")
      if (auto d = t->final_metric("density/block")) densities[t->param("seq_len")].insert(*d);
  if (std::none_of(densities.begin(), densities.end(), [](const auto& e) { return e.second.size() > 1; })) return;

  std::vector<std::string> lengths;
  for (const auto* t : trials)
    if (std::find(lengths.begin(), lengths.end(), t->param("seq_len")) == lengths.end())
      lengths.push_back(t->param("seq_len"));
  std::sort(lengths.begin(), lengths.end(), [](const std::string& a, const std::string& b) { return as_number(a) < as_number(b); });

  Figure f;
  const std::string suffix = group.empty() ? "" : " (" + group + ")";
  f.name = "density" + std::string(group.empty() ? "" : "_" + group);
  f.title = "Time vs block density" + suffix;
  f.columns = lengths.size() > 1 ? 2 : 1;
  f.width = lengths.size() > 1 ? 1200 : 900;
  f.height = lengths.size() > 2 ? 900 : 560;
  for (const auto& T : lengths) {
    Plot panel{"T = " + T, "block density (fraction of tiles computed)", "median time per call (ms)", false, false, 10, {}};
    const TrialData* reference = nullptr;
    double max_x = 0;
    for (const auto& label : variants()) {
      Series s{label, {}, "points pt 7 ps 1.5", false};
      for (const auto* t : trials) {
        if (t->status != "done" || t->param("seq_len") != T || sweep.variant_label(*t) != label) continue;
        auto d = t->final_metric("density/block");
        auto ms = t->final_metric("time/median_ms");
        if (!d || !ms) continue;
        s.points.emplace_back(*d, *ms);
        max_x = std::max(max_x, *d);
        if (!reference && has_baseline) reference = find_baseline(sweep, baseline, *t);
      }
      panel.series.push_back(std::move(s));
    }
    if (!reference) {
      for (const auto* t : trials) {
        if (t->status != "done" || t->param("seq_len") != T) continue;
        auto d = t->final_metric("density/block"), ms = t->final_metric("time/median_ms");
        if (!d || !ms) continue;
        auto rd = reference ? reference->final_metric("density/block") : std::nullopt;
        if (!reference || *d > *rd + 1e-12 ||
            (std::abs(*d - *rd) <= 1e-12 && *ms < *reference->final_metric("time/median_ms")))
          reference = t;
      }
    }
    if (reference) {
      auto d = reference->final_metric("density/block"), ms = reference->final_metric("time/median_ms");
      if (d && ms && *d > 0) {
        const double x_end = std::max(max_x, *d);
        panel.series.push_back(Series{"ideal: time ∝ block density from " + sweep.variant_label(*reference),
                                      {{0.0, 0.0}, {x_end, *ms * x_end / *d}}, "lines", true});
      }
    }
    f.panels.push_back(std::move(panel));
  }
  figure(f, "Time vs block density" + suffix +
                ": points above the dashed ideal line pay overhead beyond the tiles they compute.");
}

// The metric of the mode a student is deployed in (metrics::deployed).
std::optional<double> deployed(const TrialData& t, std::int64_t T, const std::string& field) {
  return metrics::deployed([&](const std::string& name) { return t.final_metric(name); }, T, field);
}

// Block density as a fraction of the causal layout's at the same T and tile: 1 = every causal
// tile computed, the scale the cost of attention follows.
std::optional<double> relative_block_density(const TrialData& t, std::int64_t T) {
  if (auto recorded = deployed(t, T, "causal_fraction")) return recorded;
  const auto block = deployed(t, T, "block_density");
  if (!block) return std::nullopt;
  const std::string tile_text = t.param("backend.tile");
  const std::int64_t tile = tile_text.empty() ? 64 : std::stoll(tile_text);
  return *block / std::max(causal_density(T, tile).block, 1e-12);
}

// A trial's name without its seed axis.
std::string name_without_seed(const TrialData& t) {
  std::string name = t.name;
  const auto at = name.find("/seed:");
  if (at != std::string::npos) {
    const auto next = name.find('/', at + 1);
    name.erase(at, next == std::string::npos ? std::string::npos : next - at);
  }
  return name;
}

// Each trial's method (metrics::method_key within its sweep, as the distill_methods view groups),
// by trial id, named after the method's first trial without its seed: seeds of one method form
// one series.
std::map<std::int64_t, std::string> method_labels(const SweepData& sweep) {
  std::map<std::string, std::string> label_of_key;
  std::map<std::int64_t, std::string> labels;
  for (const auto& t : sweep.trials)
    labels[t.id] =
        label_of_key.emplace(t.sweep + "\n" + metrics::method_key(t.params), name_without_seed(t)).first->second;
  return labels;
}

double mean_of(const std::vector<double>& v) {
  double sum = 0;
  for (double x : v) sum += x;
  return v.empty() ? std::nan("") : sum / double(v.size());
}
double sd_of(const std::vector<double>& v) {
  if (v.size() < 2) return std::nan("");
  const double m = mean_of(v);
  double ss = 0;
  for (double x : v) ss += (x - m) * (x - m);
  return std::sqrt(ss / double(v.size() - 1));
}

// The long-range recall task ([data] recall_pairs), where the sweep has it: the teacher's gates
// once (checked before any student trained), then per T each student's recall with its interval.
void Builder::teacher_gates() {
  for (const auto& t : sweep.trials) {
    const auto T = t.final_metric("teacher/gate_T");
    if (!T) continue;
    auto v = [&](const char* name) { return format_number("%.3f", t.final_metric(std::string("teacher/gate_") + name)); };
    doc.heading(2, "Teacher gates");
    doc.paragraph("Measured before any student trained (model/gates.hpp): recall >= 0.95 at the teacher's training "
                  "length T, plain bits/byte <= 2.6, a 0-step window:128 copy within 10 points of chance at 2T.");
    doc.table({"T", "recall at T", "recall at 2T", "plain bits/byte", "window:128 recall at 2T", "chance", "passed"},
              {{format_number("%.0f", T), v("recall_acc"), v("recall_acc_2x"), v("bpb"), v("window_recall_acc_2x"),
                v("recall_chance"), t.final_metric("teacher/gate_passed").value_or(0) > 0 ? "yes" : "no"}});
    return;
  }
}

void Builder::distill_recall(std::int64_t T) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& t : sweep.trials) {
    auto m = [&](const std::string& field) { return deployed(t, T, field); };
    if (!m("recall_acc")) continue;
    rows.push_back({t.name, sweep.variant_label(t), format_number("%.3f", m("recall_acc")),
                    "[" + format_number("%.3f", m("recall_acc_lo")) + ", " + format_number("%.3f", m("recall_acc_hi")) + "]",
                    format_number("%.3f", t.final_metric(metrics::eval_name(T, "teacher_recall_acc"))),
                    format_number("%.3f", t.final_metric(metrics::eval_name(T, "recall_chance")))});
  }
  if (rows.empty()) return;
  doc.paragraph("Long-range recall at T = " + std::to_string(T) +
                ": exact value prediction at the query positions (every query > T/2 from its record), 95% bootstrap "
                "interval over windows; bits/byte above are on plain windows.");
  doc.table({"trial", "backend", "recall", "95% CI", "teacher recall", "chance"}, std::move(rows));
}

void Builder::distill() {
  const auto lengths = eval_lengths(sweep);
  teacher_gates();
  doc.heading(2, "Results");
  doc.paragraph(
      "Per evaluation length, every student in the mode it is deployed in (hard, where hard mode changes what it "
      "computes): bits per byte of the teacher and the student, relative Δppl = student / teacher − 1 with its 95% "
      "bootstrap interval over every held-out window, KL(teacher‖student) per token, top-1 agreement, block density "
      "relative to the causal layout (the fraction of causal tiles computed), end-to-end speedup (tokens/s over the "
      "faster of the dense teacher with LibTorch's attention and with the causal kernel, timed in the same process) and "
      "attention-only speedup, training ms/step.");
  if (lengths.empty()) doc.paragraph("No trial of this sweep has evaluation results yet.");
  const auto labels = method_labels(sweep);
  auto method_of = [&](const TrialData& t) { return labels.at(t.id); };
  std::vector<std::string> methods;
  for (const auto& t : sweep.trials)
    if (std::find(methods.begin(), methods.end(), method_of(t)) == methods.end()) methods.push_back(method_of(t));
  for (auto T : lengths) {
    doc.heading(3, "Evaluation at T = " + std::to_string(T));
    std::vector<std::vector<std::string>> rows;
    for (const auto& t : sweep.trials) {
      auto m = [&](const std::string& field) { return deployed(t, T, field); };
      auto pct = [](std::optional<double> v) { return v ? std::optional<double>(100 * *v) : std::nullopt; };
      std::string ci;
      if (auto lo = m("rel_delta_ppl_lo"), hi = m("rel_delta_ppl_hi"); lo && hi)
        ci = "[" + format_number("%+.2f", 100 * *lo) + ", " + format_number("%+.2f", 100 * *hi) + "]";
      rows.push_back({t.name, sweep.variant_label(t), t.status,
                      format_number("%.3f", t.final_metric(metrics::eval_name(T, "teacher_bpb"))),
                      format_number("%.3f", m("student_bpb")), format_number("%+.2f%%", pct(m("rel_delta_ppl"))), ci,
                      format_number("%.4f", m("kl")), format_number("%.3f", m("agreement")),
                      format_number("%.3f", relative_block_density(t, T)), format_number("%.2f", m("speedup")),
                      format_number("%.2f", m("attention_speedup")),
                      format_number("%.1f", t.final_metric("train/ms_per_step"))});
    }
    doc.table({"trial", "backend", "status", "teacher bpb", "student bpb", "rel Δppl", "95% CI", "KL", "agreement",
               "block density / causal", "speedup", "attn speedup", "ms/step"},
              std::move(rows));
    distill_recall(T);
    // Seeds of one method together: mean and standard deviation across seeds.
    bool seeded = false;
    for (const auto& t : sweep.trials) seeded = seeded || t.name != name_without_seed(t);
    if (!seeded) continue;
    std::vector<std::vector<std::string>> agg;
    for (const auto& method : methods) {
      std::vector<double> rel, density, speedup;
      for (const auto& t : sweep.trials) {
        if (method_of(t) != method) continue;
        if (auto v = deployed(t, T, "rel_delta_ppl")) rel.push_back(100 * *v);
        if (auto v = relative_block_density(t, T)) density.push_back(*v);
        if (auto v = deployed(t, T, "speedup")) speedup.push_back(*v);
      }
      if (rel.empty()) continue;
      agg.push_back({method, std::to_string(rel.size()), format_number("%+.2f%%", mean_of(rel)),
                     format_number("%.2f", sd_of(rel)), format_number("%.3f", mean_of(density)),
                     format_number("%.3f", sd_of(density)), format_number("%.2f", mean_of(speedup))});
    }
    doc.paragraph("Seeds aggregated at T = " + std::to_string(T) + " (mean and standard deviation across seeds):");
    doc.table({"method", "seeds", "rel Δppl (mean)", "sd (pp)", "block density / causal", "sd", "speedup (mean)"},
              std::move(agg));
  }
  distill_curves();
  if (!lengths.empty()) {
    const int columns = lengths.size() > 1 ? 2 : 1, width = lengths.size() > 1 ? 1300 : 900;
    Figure frontier{"density_vs_delta_ppl", "Block density vs relative Δppl", {}, columns, width, 620};
    Figure speed{"speedup_vs_density", "Speedup vs block density", {}, columns, width, 620};
    for (auto T : lengths) {
      Plot panel{"T = " + std::to_string(T), "block density relative to the causal layout (1 = dense)",
                 "relative Δppl (%), 95% bootstrap interval", false, false, 10, {}};
      Plot e2e{"T = " + std::to_string(T), "block density relative to the causal layout (1 = dense)",
               "speedup over the dense teacher (end to end)", false, false, 10, {}};
      for (const auto& method : methods) {
        Series s{method, {}, "points pt 7 ps 1.2", false};
        Series sp{method, {}, "points pt 7 ps 1.4", false};
        for (const auto& t : sweep.trials) {
          if (method_of(t) != method) continue;
          auto d = relative_block_density(t, T), r = deployed(t, T, "rel_delta_ppl");
          auto lo = deployed(t, T, "rel_delta_ppl_lo"), hi = deployed(t, T, "rel_delta_ppl_hi");
          if (d && r) {
            s.points.emplace_back(*d, 100 * *r);
            s.ranges.emplace_back(100 * lo.value_or(*r), 100 * hi.value_or(*r));
          }
          if (auto x = deployed(t, T, "speedup"); d && x) sp.points.emplace_back(*d, *x);
        }
        panel.series.push_back(std::move(s));
        e2e.series.push_back(std::move(sp));
      }
      e2e.series.push_back(Series{"1 = as fast as the teacher", {{0.0, 1.0}, {1.05, 1.0}}, "lines", true});
      frontier.panels.push_back(std::move(panel));
      speed.panels.push_back(std::move(e2e));
    }
    figure(frontier, "The frontier: block density relative to causal vs relative Δppl, every trial in its deployed "
                     "mode with its 95% bootstrap interval; lower left is better (cheaper and closer to the teacher).");
    figure(speed, "End-to-end speedup of each student over the dense teacher (the faster of LibTorch's attention and "
                  "the causal kernel, same process) against its block density; above the line is faster.");
  }
  blend_weights();
  samples();
}

void Builder::distill_curves() {
  const std::vector<std::tuple<std::string, std::string, std::string>> curves = {
      {"train/loss", "Training loss per step", "total loss (CE, KL and regularizer terms)"},
      {"train/kl", "KL(teacher‖student) per step", "KL (nats per token)"}};
  for (const auto& [metric, title, ylabel] : curves) {
    Plot plot{title, "training step", ylabel, false, false, 10, {}};
    for (const auto& t : sweep.trials) {
      Series s{t.name, {}, "lines", false};
      for (const auto& [step, value] : load_curve(store, t.id, metric)) s.points.emplace_back(double(step), value);
      plot.series.push_back(std::move(s));
    }
    figure(Figure{file_stem(metric), "", {plot}, 1, 900, 560}, title + ", one line per trial.");
  }
}

// stat/L<layer>/weight/h<head>/<candidate>: one figure per (trial, layer), one panel per
// head, one line per candidate mask. Other stat/L<layer>/<name>: one figure per trial, one
// panel per statistic, one line per layer.
void Builder::blend_weights() {
  for (const auto& t : sweep.trials) {
    const auto names = curve_names(store, t.id, "stat/L");
    std::map<int, std::map<int, std::vector<std::string>>> weights;  // layer -> head -> metric names
    std::map<std::string, std::vector<std::pair<int, std::string>>> others;  // stat -> (layer, metric)
    for (const auto& name : names) {
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
        weights[layer][head].push_back(name);
      else
        others[rest].emplace_back(layer, name);
    }
    if (!weights.empty()) doc.heading(3, "Blend weights: " + t.name);
    for (const auto& [layer, heads] : weights) {
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
        for (const auto& metric : metrics) {
          const std::string candidate = metric.substr(metric.find('/', metric.find("weight/h") + 8) + 1);
          Series s{candidate, {}, "lines", false};
          for (const auto& [step, value] : load_curve(store, t.id, metric)) s.points.emplace_back(double(step), value);
          panel.series.push_back(std::move(s));
        }
        f.panels.push_back(std::move(panel));
      }
      figure(f, "Blend coefficient evolution, " + t.name + ", layer " + std::to_string(layer) +
                    ": one panel per head, one line per candidate mask.");
    }
    if (!others.empty()) {
      Figure f;
      f.name = "stats_trial" + std::to_string(t.id);
      f.title = t.name + ": backend statistics per layer";
      f.columns = others.size() > 1 ? 2 : 1;
      f.width = others.size() > 1 ? 1200 : 900;
      f.height = std::max<int>(560, 320 * ((static_cast<int>(others.size()) + f.columns - 1) / f.columns));
      for (const auto& [stat, metrics] : others) {
        Plot panel{stat, "training step", stat, false, false, 10, {}};
        for (const auto& [layer, metric] : metrics) {
          Series s{"layer " + std::to_string(layer), {}, "lines", false};
          for (const auto& [step, value] : load_curve(store, t.id, metric)) s.points.emplace_back(double(step), value);
          panel.series.push_back(std::move(s));
        }
        f.panels.push_back(std::move(panel));
      }
      figure(f, "Backend statistics of " + t.name + " per training step (one line per layer).");
    }
  }
}

void Builder::samples() {
  bool any = false;
  for (const auto& t : sweep.trials) {
    auto rows = store.query("SELECT prompt, who, mode, text FROM samples WHERE trial_id = " + std::to_string(t.id) +
                            " ORDER BY id");
    if (rows.rows.empty()) continue;
    if (!any) {
      doc.heading(2, "Samples: teacher and student side by side");
      any = true;
    }
    doc.heading(3, t.name);
    // Pair each student sample with the teacher's for the same prompt and mode.
    std::vector<std::vector<std::string>> table;
    std::map<std::pair<std::string, std::string>, size_t> at;
    for (const auto& r : rows.rows) {
      const auto key = std::make_pair(r[0].value_or(""), r[2].value_or(""));
      if (!at.count(key)) {
        at[key] = table.size();
        table.push_back({key.first, key.second, "", ""});
      }
      auto& row = table[at[key]];
      (r[1].value_or("") == "teacher" ? row[2] : row[3]) += r[3].value_or("");
    }
    doc.table({"prompt", "mode", "teacher", "student"}, std::move(table));
  }
}

void Builder::failures() {
  std::vector<std::vector<std::string>> failed;
  std::vector<std::string> unfinished;
  for (const auto& t : sweep.trials) {
    if (t.status == "failed") failed.push_back({t.name, t.backend, t.error});
    if (t.status == "pending" || t.status == "running") unfinished.push_back("`" + t.name + "` (" + t.status + ")");
  }
  if (failed.empty() && unfinished.empty()) return;
  doc.heading(2, "Failed and unfinished trials");
  if (!failed.empty()) doc.table({"trial", "backend", "error"}, std::move(failed));
  if (!unfinished.empty())
    doc.paragraph("Not finished (rerun `attnlab run` on the sweep to complete them): " + join(unfinished, ", ") + ".");
}

void Builder::sweep_file() {
  auto rows = store.query("SELECT path, source FROM sweeps WHERE name IN (" + name_placeholders() + ") ORDER BY id",
                          sweep.names);
  bool first = true;
  for (const auto& row : rows.rows) {
    if (!row[1] || row[1]->empty()) continue;
    if (first) doc.heading(2, rows.rows.size() > 1 ? "Sweep files" : "Sweep file");
    first = false;
    doc.paragraph("`" + row[0].value_or("") + "` as it was when last run:");
    doc.preformatted(*row[1]);
  }
}

}  // namespace

ReportFiles write_report(ResultStore& store, const ReportOptions& options) {
  Builder b(store, options);
  for (const auto& t : b.sweep.trials) b.has_baseline = b.has_baseline || t.backend == b.baseline.backend;
  if (options.plots) b.gnuplot = Gnuplot::locate();
  fs::create_directories(options.out);
  if (options.plots) fs::create_directories(options.out / "plots");

  b.header();
  b.run_context();
  if (b.sweep.kind == "bench") b.bench();
  else b.distill();
  b.failures();
  b.sweep_file();

  b.files.markdown = options.out / "index.md";
  b.files.html = options.out / "index.html";
  std::ofstream(b.files.markdown) << b.doc.markdown();
  std::ofstream(b.files.html) << b.doc.html("attnlab report: " + options.sweep);
  return b.files;
}

}  // namespace attnlab::report
