#pragma once
// The gates a trained teacher must pass before a student's numbers mean anything (issue 18):
// it must use its context, model the text, and a fixed window must not reach the records.
//
//   recall      greedy recall accuracy at the teacher's training length T   >= 0.95
//   recall_2x   the same at 2T (reported; no threshold)
//   bpb         bits per byte on plain held-out windows at T                <= 2.6 (goal 2.4)
//   window      a 0-step copy with masks window:128, recall at 2T           <= chance + 0.10
//               (at 2T every query is > T away from its record; with L layers a window of W
//               reaches L (W - 1) back, so the check means something only when T > L * 127)
//
// Measured on up to kGateWindows evenly spaced held-out windows, no intervals (the per-trial
// eval has them).
#include "model/gpt2.hpp"
#include "model/recall_eval.hpp"
#include "text/token_data.hpp"
#include "text/tokenizer.hpp"

#include <cstdint>
#include <string>

namespace attnlab {
struct TrialSink;
}

namespace attnlab::model {

constexpr std::int64_t kGateWindows = 64;
constexpr double kGateRecall = 0.95, kGateBpb = 2.6, kGateWindowMargin = 0.10;

struct TeacherGates {
  std::int64_t T = 0;
  double recall = -1, recall_2x = -1, bpb = -1, window_recall_2x = -1, chance = 0;
  bool recall_ok() const { return recall >= kGateRecall; }
  bool bpb_ok() const { return bpb >= 0 && bpb <= kGateBpb; }
  bool window_ok() const { return window_recall_2x >= 0 && window_recall_2x <= chance + kGateWindowMargin; }
  bool passed() const { return recall_ok() && bpb_ok() && window_ok(); }
  std::string describe() const;
};

// held_T / held_2x: the held-out splits with windows at T and 2T (null: that gate is not measured).
TeacherGates measure_gates(GPT2& teacher, GPT2& windowed, std::int64_t T, const text::TokenDataset* held_T,
                           const text::TokenDataset* held_2x, const RecallTask& task, const text::Tokenizer& tokenizer);

// teacher/gate_{T,recall_acc,recall_acc_2x,bpb,window_recall_acc_2x,recall_chance,passed} and an info line.
void record_gates(const TeacherGates& gates, TrialSink& sink);

}  // namespace attnlab::model
