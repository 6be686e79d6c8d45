#pragma once
// The distill trial's evaluation: teacher and student on every held-out window at each eval
// length, side by side. Per length T (metric names in distill.hpp, docs/RESULTS.md):
//   * quality: perplexity, KL, agreement, bits per byte, with bootstrap intervals (bootstrap.hpp);
//   * executed density of the student's attention, the mean over every evaluated batch;
//   * speed, in this process: the dense teacher timed with LibTorch's attention and with
//     attnlab's causal kernel (the faster of the two is the baseline), interleaved per batch
//     with the student (timing.hpp);
//   * recall accuracy, where the trial has a recall task that fits T (recall_eval.hpp).
// The student is evaluated in the mode it is deployed in: hard, when hard mode changes its
// output (and soft too when asked).
#include "model/gpt2.hpp"
#include "model/recall_eval.hpp"
#include "model/specs.hpp"
#include "text/token_data.hpp"
#include "text/tokenizer.hpp"

#include <cstdint>
#include <string>

namespace attnlab {
struct TrialSink;
}

namespace attnlab::model {

// The models side by side: the teacher, the same teacher timed with each dense execution,
// and the student.
struct EvalModels {
  GPT2& teacher;
  GPT2& teacher_sdpa;
  GPT2& teacher_kernel;
  GPT2& student;
};

// The held-out splits and what the trial asks of them.
struct EvalData {
  const text::Tokenizer& tokenizer;
  const text::TokenDataset& valid;
  const text::TokenDataset& test;
  const RecallTask& recall;
};

void evaluate(const EvalModels& models, const EvalData& data, const DistillSpec& spec, TrialSink& sink);

// The held-out split evaluated at T: the spec's, or the other one when it is shorter than one
// window (a small corpus); null when neither holds one.
const text::TokenDataset* eval_dataset(const text::TokenDataset& valid, const text::TokenDataset& test,
                                       const std::string& split, std::int64_t T);

}  // namespace attnlab::model
