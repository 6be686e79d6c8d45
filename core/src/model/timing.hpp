#pragma once
// The speed of models in eval, timed in one process: tokens per second of the whole forward
// and milliseconds in its attention backends, medians over the timed batches.
#include "model/gpt2.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

namespace attnlab::model {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// One model timed in eval, and how to put it in its mode (a student's hard or soft).
struct TimedModel {
  GPT2* model;
  std::function<void()> prepare;
};

// A model's speed: medians over the batches; per batch, for the spread and for paired ratios.
struct Speed {
  double tokens_per_s = 0, attention_ms = 0;
  double select_ms = -1;  // median selection time per forward (all layers); -1: none reported
  std::vector<double> batch_tokens_per_s;
  double lo() const { return *std::min_element(batch_tokens_per_s.begin(), batch_tokens_per_s.end()); }
  double hi() const { return *std::max_element(batch_tokens_per_s.begin(), batch_tokens_per_s.end()); }
};

// Every model on every input, interleaved: input i runs model 0, 1, 2, ... before input i + 1,
// so a drift of the machine (clock, a neighbour's load) falls on every model alike rather
// than on whichever was timed last. One untimed pass of each model first.
std::vector<Speed> time_interleaved(const std::vector<TimedModel>& models, const std::vector<at::Tensor>& inputs);

}  // namespace attnlab::model
