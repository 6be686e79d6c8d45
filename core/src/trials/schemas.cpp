#include "trials/schemas.hpp"

#include "model/specs.hpp"
#include "runtime/bench_spec.hpp"

namespace attnlab::trials {

KindSchema bench_schema() {
  KindSchema s;
  s.name = "bench";
  s.summary = "the attention op of one backend, timed and measured (time, memory, FLOPs, density)";
  s.grid = bench_keys().keys();
  s.times_repeats = true;
  return s;
}

KindSchema distill_schema() {
  KindSchema s;
  s.name = "distill";
  s.summary = "a GPT-2 student (the teacher with the trial's attention) distilled against its dense teacher, then evaluated";
  s.grid = model::distill_keys().keys();
  s.sections = {{"data", model::data_keys().keys()},
                {"teacher", model::teacher_keys().keys()},
                {"eval", model::eval_keys().keys()}};
  // One pass per trial: timing repeats mean nothing here (and these values are in the keys of
  // every distill trial recorded so far).
  s.sweep_defaults = {{"warmup", 0}, {"repeats", 1}};
  s.curves = {"train/loss", "train/ce", "train/kl", "train/reg"};  // logged every log_every steps (distill.cpp)
  return s;
}

std::vector<KindSchema> all_schemas() { return {bench_schema(), distill_schema()}; }

}  // namespace attnlab::trials
