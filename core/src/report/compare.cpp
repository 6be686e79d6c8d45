#include "report/compare.hpp"

#include "base/metrics.hpp"

#include <cstdio>
#include <set>
#include <stdexcept>

namespace attnlab::report {

BaselineSpec parse_baseline(const std::string& text) {
  BaselineSpec spec;
  size_t start = text.find('/');
  spec.backend = text.substr(0, start);
  if (spec.backend.empty())
    throw std::invalid_argument("--baseline '" + text + "': expected BACKEND or BACKEND/param=value[/...]");
  while (start != std::string::npos) {
    const size_t next = text.find('/', start + 1);
    const std::string item = text.substr(start + 1, next == std::string::npos ? std::string::npos : next - start - 1);
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      throw std::invalid_argument("--baseline '" + text + "': '" + item + "' is not param=value");
    spec.params["backend." + item.substr(0, eq)] = item.substr(eq + 1);
    start = next;
  }
  return spec;
}

const TrialData* find_baseline(const SweepData& sweep, const BaselineSpec& baseline, const TrialData& trial) {
  const std::string key = axes_key(trial);
  for (const auto& candidate : sweep.trials) {
    if (candidate.backend != baseline.backend || candidate.status != "done" || axes_key(candidate) != key) continue;
    bool pinned = true;
    for (const auto& [name, value] : baseline.params) pinned = pinned && candidate.param(name) == value;
    if (!pinned) continue;
    return &candidate;
  }
  return nullptr;
}

void require_one_baseline_variant(const SweepData& sweep, const BaselineSpec& baseline, const std::string& text) {
  std::set<std::string> variants;
  for (const auto& t : sweep.trials) {
    if (t.backend != baseline.backend) continue;
    bool pinned = true;
    for (const auto& [name, value] : baseline.params) pinned = pinned && t.param(name) == value;
    if (pinned) variants.insert(sweep.variant_label(t));
  }
  if (variants.size() <= 1) return;
  std::string listed;
  for (const auto& v : variants) listed += (listed.empty() ? "" : ", ") + v;
  // A variant label ("dense/execution=sdpa") is itself a pinned --baseline.
  throw std::invalid_argument("--baseline " + text + " matches " + std::to_string(variants.size()) +
                              " variants of '" + baseline.backend + "': " + listed +
                              "; pin one, e.g. --baseline " + *variants.begin());
}

std::optional<double> ratio(std::optional<double> numerator, std::optional<double> denominator) {
  if (!numerator || !denominator || *denominator == 0.0) return std::nullopt;
  return *numerator / *denominator;
}

std::vector<std::int64_t> eval_lengths(const SweepData& sweep) {
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

namespace {

std::optional<std::string> number(std::optional<double> value) {
  if (!value) return std::nullopt;
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.6g", *value);
  return std::string(buffer);
}

}  // namespace

ResultStore::Table compare_table(const SweepData& sweep, const BaselineSpec& baseline) {
  ResultStore::Table table;
  const auto lengths = eval_lengths(sweep);
  const bool distill = sweep.kind == "distill" || (!lengths.empty() && sweep.kind != "bench");
  std::vector<std::pair<std::string, std::string>> columns;  // (column name, metric); metric "" = text
  if (!distill) {
    table.columns = {"trial_id", "trial", "backend", "status", "baseline_trial_id", "median_ms", "ratio_median_ms",
                     "peak_mib", "ratio_peak_mib", "flag"};
    for (const auto& t : sweep.trials) {
      const TrialData* base = find_baseline(sweep, baseline, t);
      auto value = [&](const TrialData* from, const char* metric) -> std::optional<double> {
        return from ? from->final_metric(metric) : std::nullopt;
      };
      // Either side's repeats spread by more than 10% of their mean: the ratio is suspect.
      auto noisy = [&](const TrialData* from) { return value(from, "time/cv").value_or(0.0) > 0.1; };
      table.rows.push_back({std::to_string(t.id), t.name, t.backend, t.status,
                            base ? std::optional<std::string>(std::to_string(base->id)) : std::nullopt,
                            number(t.final_metric("time/median_ms")),
                            number(ratio(t.final_metric("time/median_ms"), value(base, "time/median_ms"))),
                            number(t.final_metric("memory/peak_tensor_mib")),
                            number(ratio(t.final_metric("memory/peak_tensor_mib"), value(base, "memory/peak_tensor_mib"))),
                            noisy(&t) || noisy(base) ? std::optional<std::string>("noisy (cv > 10%)") : std::nullopt});
    }
    return table;
  }
  table.columns = {"trial_id", "trial", "backend", "status", "eval_len", "baseline_trial_id", "ms_per_step",
                   "ratio_ms_per_step", "peak_mib", "ratio_peak_mib", "student_ppl", "ratio_student_ppl", "kl",
                   "ratio_kl"};
  for (const auto& t : sweep.trials) {
    const TrialData* base = find_baseline(sweep, baseline, t);
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

}  // namespace attnlab::report
