#pragma once
// One declaration per metric, as base/keys.hpp has one per config key: the name pattern, unit,
// direction, display format, flags and a one-line doc. The summary views' columns and the CLI's
// summary formats (each kind's trials/<kind>/tables.cpp), the report's
// deployed-mode lookups and docs/RESULTS.md (`attnlab metrics --markdown`) all read this list;
// a test fails when a trial emits a name that no declaration matches.
//
// To add a metric, add ONE line to kMetricList in base/metrics.cpp, e.g.
//
//   {"distill", "eval/T<T>/recall_acc", "fraction", Better::Higher, "%.3f", kDeployed, "recall_acc",
//    "share of recall queries answered right"},
//
// and emit it under that name (metrics::eval_name(T, "recall_acc") for an eval/T<T>/ one).
// Placeholders in <angle brackets> stand for one path segment ("<T>": an eval length, "<layer>"
// and "<name>": any text). A non-empty column puts the metric in its kind's summary view under
// that name. No header here includes LibTorch: bin/attnlab links this (no-torch) code.
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace attnlab::metrics {

enum class Better { Higher, Lower, Neither };

enum Flags : unsigned {
  kFinal = 0,          // one value per trial (step = -1)
  kCurve = 1u << 0,    // per step (step >= 0): what the step counts is in the doc
  kDeployed = 1u << 1,  // also recorded in hard mode as eval/T<T>/hard_<field>; the summary shows
                        // the deployed one (hard first: deployed_sql, deployed)
  kInterval = 1u << 2,  // also <name>_lo and <name>_hi: the 95% bootstrap bounds
};

struct Metric {
  const char* kind;     // "bench", "distill", or "*" (every kind)
  const char* pattern;  // "time/median_ms", "eval/T<T>/kl", "stat/L<layer>/<name>"
  const char* unit;     // "ms", "MiB", "fraction", ...
  Better better;
  const char* format;   // printf format for one value: "%.3f"
  unsigned flags;
  const char* column;   // the summary view's column ("" = none)
  const char* doc;

  bool has(Flags f) const { return (flags & f) != 0; }
  // The field of an eval/T<T>/<field> metric ("kl"), else "".
  std::string eval_field() const;
};

// Every declared metric, in declaration order (the views' column order).
const std::vector<Metric>& all();

// The declaration `name` (a concrete metric name, "eval/T256/hard_kl_lo") is an instance of,
// or nullptr. hard_ (kDeployed) and _lo/_hi (kInterval) variants match their base declaration.
const Metric* find(const std::string& name);

// The declaration whose summary column is `column` (of `kind`), or nullptr.
const Metric* by_column(const std::string& kind, const std::string& column);

// "eval/T<T>/<field>": the one spelling of an evaluation metric's name.
std::string eval_name(std::int64_t T, const std::string& field);

// The deployed-mode rule, once: a student's figure is its hard-mode one where the trial
// recorded one (hard mode changes what it computes), else the soft one.
extern const char* const kHardPrefix;  // "hard_"
std::string hard(const std::string& field);
std::optional<double> deployed(const std::function<std::optional<double>(const std::string&)>& final_metric,
                               std::int64_t T, const std::string& field);
// The same in SQL over a (field, value) row set `ev` grouped by trial and eval length.
std::string deployed_sql(const std::string& field);

// A method: a trial's parameters apart from its seed, "name=value" sorted by name and joined
// by ';' (seeds of one method form one series). method_sql is the same for a trial id
// expression in SQL.
extern const char* const kSeedParam;  // "seed"
std::string method_key(const std::map<std::string, std::string>& params);
std::string method_sql(const std::string& trial_id);

// `value` printed with its declaration's format ("%.6g" for an undeclared name).
std::string format(const std::string& name, double value);

}  // namespace attnlab::metrics
