#pragma once
// blend's search baseline (selection = "search"), DuoAttention / MoA-style: a per-head
// candidate assignment from measured quality costs, solved greedily under a compute budget.
//
//   delta[h][k]  measured cost of head h running candidate k instead of dense (>= 0)
//   cost[k]      candidate k's compute, relative to the causal layout (block density ratio)
//   budget       the mean over heads of cost[choice[h]] must not exceed it (when reachable)
//
// Greedy: every head starts at its lowest-delta candidate (ties: the cheaper); while the mean
// cost is over budget, apply the one move (h -> a cheaper k) with the smallest added delta per
// unit of cost saved. Stops when no head can get cheaper (budget unreachable: every head at its
// cheapest). O(moves * H * K); H * K is tens.
#include <vector>

namespace attnlab_blend {

std::vector<int> greedy_assignment(const std::vector<std::vector<double>>& delta, const std::vector<double>& cost,
                                   double budget);

}  // namespace attnlab_blend
