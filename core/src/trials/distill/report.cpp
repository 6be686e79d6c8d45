// The distill kind's report section (the teacher's gates; per evaluation length every student
// as deployed, its recall, its seeds aggregated; the figures of figures.cpp; samples) and its
// compare table (ms/step, peak memory, perplexity and KL per evaluation length, with ratios).
#include "trials/distill/distill.hpp"

#include "base/metrics.hpp"

#include <attnlab/density.hpp>

#include <algorithm>
#include <cmath>
#include <set>

namespace attnlab::trials {
namespace distill {

using report::format_number;
using report::Page;
using report::TrialData;

std::vector<std::int64_t> eval_lengths(const report::SweepData& sweep) {
  std::set<std::int64_t> lengths;
  for (const auto& t : sweep.trials)
    for (const auto& [name, value] : t.finals) {
      if (name.rfind("eval/T", 0) != 0) continue;
      const size_t slash = name.find('/', 6);
      if (slash == std::string::npos) continue;
      try {
        lengths.insert(std::stoll(name.substr(6, slash - 6)));
      } catch (const std::exception&) {
      }
    }
  return {lengths.begin(), lengths.end()};
}

std::optional<double> deployed(const TrialData& t, std::int64_t T, const std::string& field) {
  return metrics::deployed([&](const std::string& name) { return t.final_metric(name); }, T, field);
}

// 1 = every causal tile computed, the scale the cost of attention follows.
std::optional<double> relative_block_density(const TrialData& t, std::int64_t T) {
  if (auto recorded = deployed(t, T, "causal_fraction")) return recorded;
  const auto block = deployed(t, T, "block_density");
  if (!block) return std::nullopt;
  const std::string tile_text = t.param("backend.tile");
  const std::int64_t tile = tile_text.empty() ? 64 : std::stoll(tile_text);
  return *block / std::max(causal_density(T, tile).block, 1e-12);
}

namespace {

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
// once (checked before any student trained).
void teacher_gates(Page& page) {
  for (const auto& t : page.sweep.trials) {
    const auto T = t.final_metric("teacher/gate_T");
    if (!T) continue;
    auto v = [&](const char* name) { return format_number("%.3f", t.final_metric(std::string("teacher/gate_") + name)); };
    page.doc.heading(2, "Teacher gates");
    page.doc.paragraph("Measured before any student trained (model/gates.hpp): recall >= 0.95 at the teacher's "
                       "training length T, plain bits/byte <= 2.6, a 0-step window:128 copy within 10 points of "
                       "chance at 2T.");
    page.doc.table({"T", "recall at T", "recall at 2T", "plain bits/byte", "window:128 recall at 2T", "chance", "passed"},
                   {{format_number("%.0f", T), v("recall_acc"), v("recall_acc_2x"), v("bpb"), v("window_recall_acc_2x"),
                     v("recall_chance"), t.final_metric("teacher/gate_passed").value_or(0) > 0 ? "yes" : "no"}});
    return;
  }
}

// Which heads each method keeps long-range: per blend method, the (layer, head)s whose deployed
// candidate is causal, counted over its finished seeds. gating and topk choose per query tile
// (input-dependent), so they have no per-head answer: their statistics figures show it.
void long_range_heads(Page& page, const Methods& methods) {
  std::map<std::string, std::map<std::string, int>> kept;  // method -> "L0 h3" -> seeds
  std::map<std::string, int> seeds, heads;
  for (const auto& t : page.sweep.trials) {
    if (t.status != "done") continue;
    const auto choices = final_head_choices(page, t);
    if (choices.empty()) continue;
    const auto& method = methods.of.at(t.id);
    ++seeds[method];
    heads[method] = static_cast<int>(choices.size());
    kept[method];
    for (const auto& [at, candidate] : choices)
      if (candidate == "causal") ++kept[method]["L" + std::to_string(at.first) + " h" + std::to_string(at.second)];
  }
  if (seeds.empty()) return;
  std::vector<std::vector<std::string>> rows;
  for (const auto& method : methods.in_order) {
    if (!seeds.count(method)) continue;
    std::vector<std::string> listed;
    for (const auto& [head, n] : kept[method]) listed.push_back(head + " (" + std::to_string(n) + "/" + std::to_string(seeds[method]) + ")");
    rows.push_back({method, std::to_string(seeds[method]), std::to_string(heads[method]),
                    listed.empty() ? "none" : report::join(listed, ", ")});
  }
  page.doc.heading(3, "Heads kept long-range");
  page.doc.paragraph("Per blend method, the heads whose deployed mask is causal (the rest run the cheap candidate), "
                     "with the number of seeds that kept each. gating and topk choose per query tile from the input, "
                     "so they have no fixed per-head answer.");
  page.doc.table({"method", "seeds", "heads", "kept causal (seeds)"}, std::move(rows));
}

// Per T, each student's recall with its interval.
void recall_table(Page& page, std::int64_t T) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& t : page.sweep.trials) {
    auto m = [&](const std::string& field) { return deployed(t, T, field); };
    if (!m("recall_acc")) continue;
    rows.push_back({t.name, page.sweep.variant_label(t), format_number("%.3f", m("recall_acc")),
                    "[" + format_number("%.3f", m("recall_acc_lo")) + ", " + format_number("%.3f", m("recall_acc_hi")) + "]",
                    format_number("%.3f", t.final_metric(metrics::eval_name(T, "teacher_recall_acc"))),
                    format_number("%.3f", t.final_metric(metrics::eval_name(T, "recall_chance")))});
  }
  if (rows.empty()) return;
  page.doc.paragraph("Long-range recall at T = " + std::to_string(T) +
                     ": exact value prediction at the query positions (every query > T/2 from its record), 95% "
                     "bootstrap interval over windows; bits/byte above are on plain windows.");
  page.doc.table({"trial", "backend", "recall", "95% CI", "teacher recall", "chance"}, std::move(rows));
}

// Every student at T in the mode it is deployed in.
void results_table(Page& page, std::int64_t T) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& t : page.sweep.trials) {
    auto m = [&](const std::string& field) { return deployed(t, T, field); };
    auto pct = [](std::optional<double> v) { return v ? std::optional<double>(100 * *v) : std::nullopt; };
    std::string ci;
    if (auto lo = m("rel_delta_ppl_lo"), hi = m("rel_delta_ppl_hi"); lo && hi)
      ci = "[" + format_number("%+.2f", 100 * *lo) + ", " + format_number("%+.2f", 100 * *hi) + "]";
    rows.push_back({t.name, page.sweep.variant_label(t), t.status,
                    format_number("%.3f", t.final_metric(metrics::eval_name(T, "teacher_bpb"))),
                    format_number("%.3f", m("student_bpb")), format_number("%+.2f%%", pct(m("rel_delta_ppl"))), ci,
                    format_number("%.4f", m("kl")), format_number("%.3f", m("agreement")),
                    format_number("%.3f", relative_block_density(t, T)), format_number("%.2f", m("speedup")),
                    format_number("%.2f", m("attention_speedup")),
                    format_number("%.1f", t.final_metric("train/ms_per_step"))});
  }
  page.doc.table({"trial", "backend", "status", "teacher bpb", "student bpb", "rel Δppl", "95% CI", "KL", "agreement",
                  "block density / causal", "speedup", "attn speedup", "ms/step"},
                 std::move(rows));
}

// Seeds of one method together at T: mean and standard deviation across seeds (only when the
// sweep has a seed axis).
void seeds_table(Page& page, std::int64_t T, const Methods& methods) {
  bool seeded = false;
  for (const auto& t : page.sweep.trials) seeded = seeded || t.name != name_without_seed(t);
  if (!seeded) return;
  std::vector<std::vector<std::string>> agg;
  for (const auto& method : methods.in_order) {
    std::vector<double> rel, density, speedup;
    for (const auto& t : page.sweep.trials) {
      if (methods.of.at(t.id) != method) continue;
      if (auto v = deployed(t, T, "rel_delta_ppl")) rel.push_back(100 * *v);
      if (auto v = relative_block_density(t, T)) density.push_back(*v);
      if (auto v = deployed(t, T, "speedup")) speedup.push_back(*v);
    }
    if (rel.empty()) continue;
    agg.push_back({method, std::to_string(rel.size()), format_number("%+.2f%%", mean_of(rel)),
                   format_number("%.2f", sd_of(rel)), format_number("%.3f", mean_of(density)),
                   format_number("%.3f", sd_of(density)), format_number("%.2f", mean_of(speedup))});
  }
  page.doc.paragraph("Seeds aggregated at T = " + std::to_string(T) + " (mean and standard deviation across seeds):");
  page.doc.table({"method", "seeds", "rel Δppl (mean)", "sd (pp)", "block density / causal", "sd", "speedup (mean)"},
                 std::move(agg));
}

}  // namespace

// Each trial's method (metrics::method_key within its sweep, as the distill_methods view
// groups), named after the method's first trial without its seed.
Methods methods_of(const report::SweepData& sweep) {
  Methods methods;
  std::map<std::string, std::string> label_of_key;
  for (const auto& t : sweep.trials) {
    const auto& label =
        label_of_key.emplace(t.sweep + "\n" + metrics::method_key(t.params), name_without_seed(t)).first->second;
    methods.of[t.id] = label;
    if (std::find(methods.in_order.begin(), methods.in_order.end(), label) == methods.in_order.end())
      methods.in_order.push_back(label);
  }
  return methods;
}

}  // namespace distill

void DistillKind::report(report::Page& page) const {
  const auto lengths = distill::eval_lengths(page.sweep);
  distill::teacher_gates(page);
  page.doc.heading(2, "Results");
  page.doc.paragraph(
      "Per evaluation length, every student in the mode it is deployed in (hard, where hard mode changes what it "
      "computes): bits per byte of the teacher and the student, relative Δppl = student / teacher − 1 with its 95% "
      "bootstrap interval over every held-out window, KL(teacher‖student) per token, top-1 agreement, block density "
      "relative to the causal layout (the fraction of causal tiles computed), end-to-end speedup (tokens/s over the "
      "faster of the dense teacher with LibTorch's attention and with the causal kernel, timed in the same process) and "
      "attention-only speedup, training ms/step.");
  if (lengths.empty()) page.doc.paragraph("No trial of this sweep has evaluation results yet.");
  const auto methods = distill::methods_of(page.sweep);
  for (auto T : lengths) {
    page.doc.heading(3, "Evaluation at T = " + std::to_string(T));
    distill::results_table(page, T);
    distill::recall_table(page, T);
    distill::seeds_table(page, T, methods);
  }
  if (!lengths.empty()) distill::frontier_figures(page, lengths, methods);
  distill::long_range_heads(page, methods);
  distill::training_curves(page);
  distill::backend_statistics(page);
  page.samples();
}

ResultStore::Table DistillKind::compare(const report::SweepData& sweep, const report::BaselineSpec& baseline) const {
  using report::number;
  using report::ratio;
  using report::TrialData;
  ResultStore::Table table;
  table.columns = {"trial_id", "trial", "backend", "status", "eval_len", "baseline_trial_id", "ms_per_step",
                   "ratio_ms_per_step", "peak_mib", "ratio_peak_mib", "student_ppl", "ratio_student_ppl", "kl",
                   "ratio_kl"};
  const auto lengths = distill::eval_lengths(sweep);
  for (const auto& t : sweep.trials) {
    const TrialData* base = report::find_baseline(sweep, baseline, t);
    auto value = [&](const TrialData* from, const std::string& metric) -> std::optional<double> {
      return from ? from->final_metric(metric) : std::nullopt;
    };
    // A trial that failed before evaluating still gets one row, so it shows up.
    std::vector<std::int64_t> rows_for;
    for (auto T : lengths)
      if (t.final_metric(metrics::eval_name(T, "student_ppl"))) rows_for.push_back(T);
    if (rows_for.empty()) rows_for.push_back(-1);
    for (auto T : rows_for) {
      std::vector<std::optional<std::string>> row = {
          std::to_string(t.id), t.name, t.backend, t.status,
          T < 0 ? std::nullopt : std::optional<std::string>(std::to_string(T)),
          base ? std::optional<std::string>(std::to_string(base->id)) : std::nullopt,
          number(t.final_metric("train/ms_per_step")),
          number(ratio(t.final_metric("train/ms_per_step"), value(base, "train/ms_per_step")))};
      for (const char* field : {"peak_mib", "student_ppl", "kl"}) {
        const std::string metric = metrics::eval_name(T, field);
        row.push_back(number(t.final_metric(metric)));
        row.push_back(number(ratio(t.final_metric(metric), value(base, metric))));
      }
      table.rows.push_back(std::move(row));
    }
  }
  return table;
}

}  // namespace attnlab::trials
