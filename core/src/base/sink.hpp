#pragma once
// Where a running trial puts what it measures. The runner implements this on top of the
// ResultStore (one SQLite transaction per flush); tests implement it in memory.
//
// Metric names are flat paths, documented in docs/RESULTS.md:
//   bench:   time/median_ms, time/min_ms, ..., memory/peak_tensor_mib, flops/gflops ...
//   distill: train/loss (per step), eval/T128/student_ppl (final, step = -1), stat/L0/... .
#include <cstdint>
#include <string>

namespace attnlab {

struct TrialSink {
  virtual ~TrialSink() = default;
  // step >= 0 makes a curve; step = -1 is a final value.
  virtual void metric(const std::string& name, double value, std::int64_t step = -1) = 0;
  // A generated text: who = "teacher" | "student", mode = "greedy" | "sampled".
  virtual void sample(const std::string& prompt, const std::string& who, const std::string& mode,
                      const std::string& text) = 0;
  // Descriptive facts about the trial (teacher identity, tokenizer, corpus, ...).
  virtual void info(const std::string& key, const std::string& value) = 0;
  // Progress for the live display; cheap, may be called every step.
  virtual void progress(std::int64_t step, std::int64_t total, const std::string& what) {}
};

}  // namespace attnlab
