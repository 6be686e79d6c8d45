// The teacher's gates (gates.hpp).
#include "model/gates.hpp"

#include "base/sink.hpp"

#include <ATen/ATen.h>

#include <cmath>
#include <cstdio>

namespace attnlab::model {
namespace {

// Bits per byte of the model on up to kGateWindows plain windows of length T.
double plain_bpb(GPT2& model, const text::TokenDataset& data, std::int64_t T, const text::Tokenizer& tokenizer) {
  torch::NoGradGuard no_grad;
  const std::int64_t all = data.num_eval_windows(T), windows = std::min(all, kGateWindows);
  double nll = 0, bytes = 0;
  for (std::int64_t first = 0; first < windows; first += 8) {
    std::vector<std::int64_t> indices;
    for (std::int64_t j = first; j < std::min(first + 8, windows); ++j) indices.push_back(j * all / windows);
    const auto w = data.eval_windows_at(indices, T);
    const auto logits = model.forward(w.narrow(1, 0, T));
    const auto y = w.narrow(1, 1, T).reshape(-1);
    nll += at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}), y, {}, at::Reduction::Sum).item<double>();
    const auto* ids = y.data_ptr<std::int64_t>();
    for (std::int64_t i = 0; i < y.numel(); ++i) bytes += double(tokenizer.token_bytes(ids[i]));
  }
  return nll / std::log(2.0) / std::max(bytes, 1.0);
}

}  // namespace

std::string TeacherGates::describe() const {
  char line[400];
  std::snprintf(line, sizeof line,
                "T = %lld: recall %.3f (gate >= %.2f: %s), at 2T %.3f; plain bits/byte %.3f (gate <= %.1f: %s); "
                "0-step window:128 recall at 2T %.3f vs chance %.3f (gate <= chance + %.2f: %s)",
                static_cast<long long>(T), recall, kGateRecall, recall_ok() ? "met" : "MISSED", recall_2x, bpb,
                kGateBpb, bpb_ok() ? "met" : "MISSED", window_recall_2x, chance, kGateWindowMargin,
                window_ok() ? "met" : "MISSED");
  return line;
}

TeacherGates measure_gates(GPT2& teacher, GPT2& windowed, std::int64_t T, const text::TokenDataset* held_T,
                           const text::TokenDataset* held_2x, const RecallTask& task, const text::Tokenizer& tokenizer) {
  TeacherGates g;
  g.T = T;
  g.chance = task.chance();
  if (held_T) {
    g.bpb = plain_bpb(teacher, *held_T, T, tokenizer);
    if (task.fits(T)) g.recall = recall_accuracy(teacher, *held_T, T, kGateWindows, 8, task);
  }
  if (held_2x && task.fits(2 * T) && 2 * T <= teacher.config().n_positions) {
    g.recall_2x = recall_accuracy(teacher, *held_2x, 2 * T, kGateWindows, 8, task);
    g.window_recall_2x = recall_accuracy(windowed, *held_2x, 2 * T, kGateWindows, 8, task);
  }
  return g;
}

void record_gates(const TeacherGates& g, TrialSink& sink) {
  sink.metric("teacher/gate_T", double(g.T));
  sink.metric("teacher/gate_recall_acc", g.recall);
  sink.metric("teacher/gate_recall_acc_2x", g.recall_2x);
  sink.metric("teacher/gate_bpb", g.bpb);
  sink.metric("teacher/gate_window_recall_acc_2x", g.window_recall_2x);
  sink.metric("teacher/gate_recall_chance", g.chance);
  sink.metric("teacher/gate_passed", g.passed() ? 1.0 : 0.0);
  sink.info("teacher.gates", g.describe());
}

}  // namespace attnlab::model
