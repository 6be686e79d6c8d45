#pragma once
// Recall evaluation (text/recall.hpp): exact value prediction at the query positions of held-out
// windows that carry a record, overall and per distance bin, with 95% bootstrap intervals over
// windows (bootstrap.hpp). Chance is 1 / recall_values.
//
// Distance bins at length T: the queries' distances lie in (T/2, T); bin i holds
// [T/2 + i*T/8, T/2 + (i+1)*T/8), i = 0..3, and is named by its lower bound (recall_acc_d<lo>).
#include "model/bootstrap.hpp"
#include "model/gpt2.hpp"
#include "text/recall.hpp"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace attnlab::model {

constexpr int kRecallBins = 4;

// The task of a trial: what [data] asks for and the ids it uses.
struct RecallTask {
  text::RecallSpec spec;
  text::RecallIds ids;
  bool enabled() const { return spec.enabled(); }
  bool fits(std::int64_t T) const { return enabled() && T >= text::min_recall_seq_len(spec.pairs); }
  double chance() const { return 1.0 / double(spec.values); }
};

struct RecallWindow {
  double correct = 0, asked = 0;
  double bin_correct[kRecallBins] = {}, bin_asked[kRecallBins] = {};
};

std::int64_t recall_bin_lo(std::int64_t T, int bin);

// Per row of logits [B, T, V]: argmax == target at the batch's answer positions.
void recall_stats(const at::Tensor& logits, const text::RecallBatch& batch, std::vector<RecallWindow>& out);

struct RecallSummary {
  Interval acc;
  Interval bins[kRecallBins];
};
RecallSummary summarize_recall(const std::vector<RecallWindow>& windows, int resamples, std::uint64_t seed);

// Greedy recall accuracy of one model on held-out windows (no intervals): the teacher gates.
double recall_accuracy(GPT2& model, const text::TokenDataset& data, std::int64_t T, std::int64_t max_windows,
                       std::int64_t batch, const RecallTask& task);

}  // namespace attnlab::model
