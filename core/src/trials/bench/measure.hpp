#pragma once
// The bench trial's measurement: the attention op of one backend, timed and measured.
//
//   inputs  q, k, v ~ N(0, 1)  [B, H, T, D]  (seeded); for fwd+bwd also dout ~ N(0, 1)
//   fwd     out = backend(q, k, v) under no_grad (inference)
//   fwd+bwd out = backend(q, k, v); out.backward(dout)  (grads of q, k, v and parameters)
//
// `warmup` untimed runs, then `repeats` timed runs, and more while the timed runs add up to
// less than `min_time_s` (at most kMaxRepeats): fast trials then get enough samples for a
// stable median on a noisy machine. Recorded (names in docs/RESULTS.md):
// wall time median/min/max/p10/p90/mean/cv, peak tensor bytes above the inputs (tracking
// allocator; CUDA: caching allocator peak) -- for fwd+bwd that includes the new q/k/v and
// parameter gradients, as the previous pass's are freed before the measurement starts --,
// peak RSS; FLOPs and GFLOP/s three ways, all from the backend's layouts() and cost():
// useful (the allowed elements: what any implementation of the mask must compute), tiles
// (every element of every non-empty tile: an upper bound, partial tiles counted whole) and
// computed (the backend's own cost(): all T^2 for masked T x T math); the fraction of the
// sgemm ceiling from the useful FLOPs; element and block density of the layouts.
#include "base/sink.hpp"
#include "runtime/bench_spec.hpp"

#include <attnlab/backend.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace attnlab {

constexpr std::int64_t kMaxRepeats = 10000;

// The grid's shape and pass (bench_spec.hpp), and what the [sweep] table sets.
struct BenchOptions : BenchGrid {
  std::string device = "cpu";
  std::int64_t warmup = 2, repeats = 5;
  double min_time_s = 0.0;
  std::uint64_t seed = 0;
  double sgemm_gflops = 0.0;      // ceiling measured in this run (0 = unknown)
  int round = 1;                  // [sweep] rounds: which execution of the trial this is
  std::vector<double> prior_repeats_ms;  // earlier rounds' repeats: the statistics pool them
};

void run_bench(AttentionBackend& backend, const BenchOptions& options, TrialSink& sink);

}  // namespace attnlab
