// The bench kind's sweep keys: its [grid] keys (runtime/bench_spec.hpp), and [sweep]'s timing
// repeats. No LibTorch here (the sweep fuzzer links this).
#include "runtime/bench_spec.hpp"
#include "trials/schemas.hpp"

namespace attnlab::trials {

KindSchema bench_schema() {
  KindSchema s;
  s.name = "bench";
  s.summary = "the attention op of one backend, timed and measured (time, memory, FLOPs, density)";
  s.grid = bench_keys().keys();
  s.times_repeats = true;
  return s;
}

}  // namespace attnlab::trials
