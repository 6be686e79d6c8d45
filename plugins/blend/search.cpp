// greedy_assignment (search.hpp).
#include "search.hpp"

#include <limits>

namespace attnlab_blend {

std::vector<int> greedy_assignment(const std::vector<std::vector<double>>& delta, const std::vector<double>& cost,
                                   double budget) {
  const int H = static_cast<int>(delta.size()), K = static_cast<int>(cost.size());
  std::vector<int> choice(H, 0);
  double total = 0;
  for (int h = 0; h < H; ++h) {
    for (int k = 1; k < K; ++k) {
      const double d = delta[h][k], best = delta[h][choice[h]];
      if (d < best || (d == best && cost[k] < cost[choice[h]])) choice[h] = k;
    }
    total += cost[choice[h]];
  }
  while (H > 0 && total / H > budget) {
    int move_h = -1, move_k = -1;
    double best_rate = std::numeric_limits<double>::infinity();
    for (int h = 0; h < H; ++h)
      for (int k = 0; k < K; ++k) {
        const double saved = cost[choice[h]] - cost[k];
        if (saved <= 0) continue;
        const double rate = (delta[h][k] - delta[h][choice[h]]) / saved;
        if (rate < best_rate) best_rate = rate, move_h = h, move_k = k;
      }
    if (move_h < 0) break;  // every head at its cheapest: the budget is out of reach
    total += cost[move_k] - cost[choice[move_h]];
    choice[move_h] = move_k;
  }
  return choice;
}

}  // namespace attnlab_blend
