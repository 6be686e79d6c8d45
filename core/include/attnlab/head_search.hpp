#pragma once
// A backend whose per-head mask the host chooses from measurements: the search baseline
// (DuoAttention / MoA-style) that a learned mask has to match. blend's selection = "search"
// implements it.
//
// The host (distill trials, model/head_search.hpp), before training:
//   for every layer l whose backend searches, every head h, every candidate c:
//     delta[l,h,c] = the distillation loss's KL(teacher || student) per token (plus the
//                    answer-position term) on `batches` calibration batches, with head h of
//                    layer l alone running candidate c and every other searched head causal
//   choose c[l,h] greedily: mean over all searched heads of cost[c] <= budget
//   (the cheapest ΔKL per unit of cost saved first), then choose_heads on each layer.
// With `random` set, nothing is measured: the same solver runs on seeded uniform scores, a
// random per-head assignment at the budget's density (the control that search must beat).
// A mixin beside AttentionBackend, not a virtual of it, so that plugins built against API 2.0
// keep their vtable: the host finds it with dynamic_cast.
#include <attnlab/export.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace attnlab {

struct HeadSearch {
  std::vector<std::string> candidates;  // mask expressions
  std::vector<double> cost;             // per candidate: what keeping it costs, 1 = causal
  double budget = 1.0;                  // mean over the model's searched heads of the chosen cost
  std::int64_t batches = 4;             // calibration batches to measure on
  bool random = false;                  // scores drawn at random (seeded), not measured
};

class ATTNLAB_API HeadSearchable {
 public:
  virtual ~HeadSearchable();  // out of line: the key function keeps typeinfo in core
  // What to measure at length T, or nullopt when this instance does not search.
  virtual std::optional<HeadSearch> head_search(std::int64_t T) const = 0;
  // choice[h]: an index into head_search()'s candidates, or kCausal (while measuring).
  virtual void choose_heads(const std::vector<int>& choice) = 0;
  static constexpr int kCausal = -1;
};

}  // namespace attnlab
