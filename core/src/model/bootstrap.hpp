#pragma once
// The statistics of a student against its teacher over held-out windows, with 95% bootstrap
// intervals: windows are resampled with replacement (`resamples` times, seeded), each
// resample's figures are recomputed from its sums, and the 2.5th and 97.5th percentiles bound
// the figure. Windows are the unit because tokens within one are not independent.
//
//   ppl        = exp(sum nll / sum tokens)            (teacher's and student's)
//   delta_ppl  = student ppl - teacher ppl            rel_delta_ppl = student ppl / teacher ppl - 1
//   kl         = sum KL(teacher || student) / tokens  (nats per token)
//   agreement  = positions where both argmax tokens agree / tokens
//   bits per byte = sum nll / ln 2 / sum bytes        (bytes tokenizer: one byte per token)
#include <cstdint>
#include <vector>

namespace attnlab::model {

struct WindowStats {
  double teacher_nll = 0, student_nll = 0, kl = 0, agree = 0, tokens = 0, bytes = 0;
};

struct Interval {
  double value = 0, lo = 0, hi = 0;
};

struct EvalSummary {
  int windows = 0;
  double tokens = 0, bytes = 0;
  double teacher_ppl = 0, student_ppl = 0, teacher_bpb = 0, student_bpb = 0;
  Interval delta_ppl, rel_delta_ppl, kl, agreement;
};

EvalSummary summarize(const std::vector<WindowStats>& windows, int resamples, std::uint64_t seed);

// sum(num) / sum(den) over windows, with the same bootstrap over windows (recall accuracy:
// correct answers / questions per window). den summing to 0 gives 0.
Interval bootstrap_ratio(const std::vector<double>& num, const std::vector<double>& den, int resamples,
                         std::uint64_t seed);

}  // namespace attnlab::model
