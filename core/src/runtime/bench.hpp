#pragma once
// Bench trial: the attention op of one backend, timed and measured.
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
// peak RSS, useful FLOPs (allowed elements: what a kernel must compute at the least) and
// tile FLOPs (every element of every non-empty tile: an upper bound, partial tiles counted
// whole), GFLOP/s of each, the fraction of the sgemm ceiling (useful FLOPs), densities.
#include "runtime/sink.hpp"

#include <attnlab/backend.hpp>

#include <cstdint>
#include <memory>
#include <string>

namespace attnlab {

constexpr std::int64_t kMaxRepeats = 10000;

struct BenchOptions {
  std::int64_t batch = 1, heads = 8, seq_len = 1024, head_dim = 64;
  std::string pass = "fwd";       // "fwd" | "fwd+bwd"
  std::string dtype = "float32";  // "float32" | "float64"
  std::string device = "cpu";
  std::int64_t warmup = 2, repeats = 5;
  double min_time_s = 0.0;
  std::uint64_t seed = 0;
  std::int64_t tile = 64;         // for block density / tile FLOPs
  double sgemm_gflops = 0.0;      // ceiling measured in this run (0 = unknown)
};

// FLOPs of attention over `elements` (query, key) pairs: QK^T and PV are 2*D each per pair;
// backward is counted as 2.5x forward (dV, dP, dQ, dK + recompute), as FlashAttention does.
double attention_flops(double elements, std::int64_t batch, std::int64_t heads, std::int64_t head_dim,
                       const std::string& pass);

void run_bench(AttentionBackend& backend, const BenchOptions& options, TrialSink& sink);

}  // namespace attnlab
