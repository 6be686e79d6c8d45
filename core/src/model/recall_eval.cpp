// Recall accuracy at the query positions (recall_eval.hpp).
#include "model/recall_eval.hpp"

#include <algorithm>

namespace attnlab::model {

std::int64_t recall_bin_lo(std::int64_t T, int bin) { return T / 2 + bin * T / 8; }

void recall_stats(const at::Tensor& logits, const text::RecallBatch& batch, std::vector<RecallWindow>& out) {
  const auto B = logits.size(0), T = logits.size(1);
  const auto targets = batch.tokens.narrow(1, 1, T);
  const auto correct = logits.argmax(-1).eq(targets).logical_and(batch.answer).contiguous();
  const auto answer = batch.answer.contiguous();
  const auto distance = batch.distance.contiguous();
  const bool* c = correct.data_ptr<bool>();
  const bool* a = answer.data_ptr<bool>();
  const std::int64_t* d = distance.data_ptr<std::int64_t>();
  for (std::int64_t b = 0; b < B; ++b) {
    RecallWindow w;
    for (std::int64_t t = 0; t < T; ++t) {
      const auto i = b * T + t;
      if (!a[i]) continue;
      const int bin = static_cast<int>(std::clamp<std::int64_t>((d[i] - T / 2) * 8 / T, 0, kRecallBins - 1));
      w.asked += 1, w.bin_asked[bin] += 1;
      if (c[i]) w.correct += 1, w.bin_correct[bin] += 1;
    }
    out.push_back(w);
  }
}

RecallSummary summarize_recall(const std::vector<RecallWindow>& windows, int resamples, std::uint64_t seed) {
  RecallSummary s;
  std::vector<double> num, den;
  for (const auto& w : windows) num.push_back(w.correct), den.push_back(w.asked);
  s.acc = bootstrap_ratio(num, den, resamples, seed);
  for (int bin = 0; bin < kRecallBins; ++bin) {
    num.clear(), den.clear();
    for (const auto& w : windows) num.push_back(w.bin_correct[bin]), den.push_back(w.bin_asked[bin]);
    s.bins[bin] = bootstrap_ratio(num, den, resamples, seed + 1 + bin);
  }
  return s;
}

double recall_accuracy(GPT2& model, const text::TokenDataset& data, std::int64_t T, std::int64_t max_windows,
                       std::int64_t batch, const RecallTask& task) {
  torch::NoGradGuard no_grad;
  const std::int64_t all = data.num_eval_windows(T);
  const std::int64_t windows = max_windows > 0 ? std::min(all, max_windows) : all;
  std::vector<RecallWindow> stats;
  for (std::int64_t first = 0; first < windows; first += batch) {
    std::vector<std::int64_t> indices;
    for (std::int64_t j = first; j < std::min(first + batch, windows); ++j) indices.push_back(j * all / windows);
    const auto rb = text::recall_eval_batch(data, indices, T, task.spec, task.ids);
    recall_stats(model.forward(rb.tokens.narrow(1, 0, T)), rb, stats);
  }
  return summarize_recall(stats, 0, 0).acc.value;
}

}  // namespace attnlab::model
