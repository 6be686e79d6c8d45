// One bench trial: the trial's grid and the [sweep] table read into BenchOptions, its backend
// made, then measured (measure.hpp).
#include "trials/bench/bench.hpp"
#include "trials/bench/measure.hpp"

#include <ATen/ATen.h>

namespace attnlab::trials {

void BenchKind::run(const TrialEnv& env, TrialSink& sink) const {
  BenchOptions o;
  static_cast<BenchGrid&>(o) = bench_keys().read(env.trial.config["grid"]);
  o.device = env.sweep.device;
  o.warmup = env.sweep.warmup;
  o.repeats = env.sweep.repeats;
  o.min_time_s = env.sweep.min_time_s;
  o.seed = env.sweep.seed;
  o.sgemm_gflops = env.sgemm_gflops;
  o.round = env.round;
  o.prior_repeats_ms = env.prior_repeats_ms;
  BackendInit init;
  init.n_heads = o.heads;
  init.head_dim = o.head_dim;
  init.max_seq_len = o.seq_len;
  init.seed = env.sweep.seed;
  at::manual_seed(env.sweep.seed);
  auto backend = env.registry.create(env.trial.backend, init, env.trial.backend_params);
  run_bench(*backend, o, sink);
}

const TrialKind& bench_kind() {
  static const BenchKind kind;
  return kind;
}

}  // namespace attnlab::trials
