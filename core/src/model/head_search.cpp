// The host's per-head search (head_search.hpp).
#include "model/head_search.hpp"

#include "base/sink.hpp"
#include "model/distill.hpp"

#include <attnlab/head_search.hpp>

#include <chrono>
#include <limits>
#include <random>

namespace attnlab::model {

std::vector<int> greedy_assignment(const std::vector<std::vector<double>>& delta,
                                   const std::vector<std::vector<double>>& cost, double budget) {
  const std::size_t heads = delta.size();
  std::vector<int> choice(heads, 0);
  double total = 0;
  for (std::size_t i = 0; i < heads; ++i) {
    for (std::size_t c = 1; c < delta[i].size(); ++c) {
      const double d = delta[i][c], best = delta[i][choice[i]];
      if (d < best || (d == best && cost[i][c] < cost[i][choice[i]])) choice[i] = static_cast<int>(c);
    }
    total += cost[i][choice[i]];
  }
  while (heads > 0 && total / static_cast<double>(heads) > budget) {
    std::size_t move_i = heads, move_c = 0;
    double best_rate = std::numeric_limits<double>::infinity();
    for (std::size_t i = 0; i < heads; ++i)
      for (std::size_t c = 0; c < delta[i].size(); ++c) {
        const double saved = cost[i][choice[i]] - cost[i][c];
        if (saved <= 0) continue;
        const double rate = (delta[i][c] - delta[i][choice[i]]) / saved;
        if (rate < best_rate) best_rate = rate, move_i = i, move_c = c;
      }
    if (move_i == heads) break;  // every head at its cheapest: the budget is out of reach
    total += cost[move_i][move_c] - cost[move_i][choice[move_i]];
    choice[move_i] = static_cast<int>(move_c);
  }
  return choice;
}

namespace {

struct SearchingLayer {
  std::size_t layer;
  HeadSearchable* backend;
  HeadSearch spec;
};

// The distillation loss's KL part at τ = 1 (head_search.hpp), per batch.
double kl_loss(const at::Tensor& teacher_logp, const at::Tensor& student_logits, const at::Tensor& answer,
               double answer_weight) {
  const auto kl_at = kl_per_position(teacher_logp, at::log_softmax(student_logits, -1));  // [B, T]
  const auto at_answers = answer_kl(kl_at, answer, answer_weight);
  return kl_at.mean().item<double>() + (at_answers.defined() ? answer_weight * at_answers.item<double>() : 0.0);
}

// One row per head of `layer`: measured deltas (the model with that head alone switched), or
// seeded uniform scores when the layer's search is random.
void score_layer(const SearchingLayer& s, std::int64_t H, const std::function<double()>& loss, double base,
                 std::mt19937_64& rng, std::vector<std::vector<double>>& delta, TrialSink& sink) {
  const std::vector<int> all_causal(static_cast<std::size_t>(H), HeadSearchable::kCausal);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  for (std::int64_t h = 0; h < H; ++h) {
    std::vector<double> row;
    for (std::size_t c = 0; c < s.spec.candidates.size(); ++c) {
      if (s.spec.random) {
        row.push_back(uniform(rng));
        continue;
      }
      auto one = all_causal;
      one[static_cast<std::size_t>(h)] = static_cast<int>(c);
      s.backend->choose_heads(one);
      row.push_back(std::max(0.0, loss() - base));
      sink.metric("search/L" + std::to_string(s.layer) + "/h" + std::to_string(h) + "/" + s.spec.candidates[c], row.back());
    }
    s.backend->choose_heads(all_causal);
    delta.push_back(row);
  }
}

}  // namespace

bool search_heads(GPT2& student, GPT2& teacher, const std::function<CalibrationBatch()>& draw, double answer_weight,
                  std::uint64_t seed, TrialSink& sink) {
  const auto start = std::chrono::steady_clock::now();
  const auto backends = student.backends();
  const std::int64_t H = student.config().n_head;
  std::vector<CalibrationBatch> batches(1, draw());
  const std::int64_t T = batches[0].inputs.size(1);
  std::vector<SearchingLayer> layers;
  bool measures = false;
  for (std::size_t l = 0; l < backends.size(); ++l)
    if (auto* searchable = dynamic_cast<HeadSearchable*>(backends[l].get()))
      if (auto spec = searchable->head_search(T)) {
        layers.push_back({l, searchable, *spec});
        measures = measures || !spec->random;
      }
  if (layers.empty()) return false;

  std::int64_t wanted = 1;
  for (const auto& s : layers) wanted = std::max(wanted, s.spec.random ? 1 : s.spec.batches);
  while (static_cast<std::int64_t>(batches.size()) < wanted) batches.push_back(draw());
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> teacher_logp;
  for (const auto& b : batches)
    if (measures) teacher_logp.push_back(at::log_softmax(teacher.forward(b.inputs), -1));
  const std::function<double()> loss = [&] {
    double total = 0;
    for (std::size_t i = 0; i < batches.size(); ++i)
      total += kl_loss(teacher_logp[i], student.forward(batches[i].inputs), batches[i].answer, answer_weight);
    return total / static_cast<double>(batches.size());
  };

  for (auto& s : layers) s.backend->choose_heads(std::vector<int>(static_cast<std::size_t>(H), HeadSearchable::kCausal));
  const double base = measures ? loss() : 0.0;
  std::mt19937_64 rng(seed);
  std::vector<std::vector<double>> delta, cost;  // one row per searched (layer, head)
  for (auto& s : layers) {
    score_layer(s, H, loss, base, rng, delta, sink);
    for (std::int64_t h = 0; h < H; ++h) cost.push_back(s.spec.cost);
  }

  double budget = 0;  // the layers share the sweep's parameters; their mean if they do not
  for (const auto& s : layers) budget += s.spec.budget / static_cast<double>(layers.size());
  const auto choice = greedy_assignment(delta, cost, budget);
  double mean_cost = 0;
  for (std::size_t i = 0; i < choice.size(); ++i) mean_cost += cost[i][choice[i]] / static_cast<double>(choice.size());
  for (std::size_t l = 0; l < layers.size(); ++l)
    layers[l].backend->choose_heads(
        std::vector<int>(choice.begin() + static_cast<std::ptrdiff_t>(l * H), choice.begin() + static_cast<std::ptrdiff_t>((l + 1) * H)));
  sink.metric("search/mean_cost", mean_cost);
  sink.metric("search/seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return true;
}

}  // namespace attnlab::model
