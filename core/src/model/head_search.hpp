#pragma once
// The host's per-head search (attnlab/head_search.hpp): measure, for every (layer, head,
// candidate) of the backends that search, what switching that one head costs the model's
// output, then assign candidates greedily under the budget.
//
//   delta[l,h,c] = L(student with head (l,h) on candidate c) - L(student with every searched head causal)
//   L = mean_{b,t} KL(teacher_t || student_t) + answer_weight · mean over answer positions of the same KL
//   (τ = 1: the KL the evaluation reports), summed over the calibration batches
#include "model/gpt2.hpp"

#include <ATen/ATen.h>

#include <functional>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace attnlab {
struct TrialSink;
}

namespace attnlab::model {

struct CalibrationBatch {
  at::Tensor inputs;  // [B, T] int64
  at::Tensor answer;  // [B, T] bool: recall answer positions (undefined: none)
};

// Greedy assignment under a budget (DuoAttention / MoA-style), one row per head:
//   delta[i][c] >= 0  measured loss of head i running candidate c
//   cost[i][c]        its compute relative to causal
// Every head starts at its lowest-delta candidate (ties: the cheaper); while the mean cost over
// heads exceeds `budget`, apply the one move (i -> a cheaper c) with the smallest added delta
// per unit of cost saved. Stops when no head can get cheaper (the budget is out of reach).
std::vector<int> greedy_assignment(const std::vector<std::vector<double>>& delta,
                                   const std::vector<std::vector<double>>& cost, double budget);

// Runs the search on `student` (whose backends may or may not search) against `teacher` on
// batches from `draw`, hands each searching layer its choice, and records
// search/L<l>/h<h>/<candidate> (delta), search/mean_cost and search/seconds. A layer whose
// search is `random` gets seeded uniform scores instead (`seed`, nothing measured). Returns
// false when no layer searches (nothing measured, nothing recorded).
bool search_heads(GPT2& student, GPT2& teacher, const std::function<CalibrationBatch()>& draw, double answer_weight,
                  std::uint64_t seed, TrialSink& sink);

}  // namespace attnlab::model
