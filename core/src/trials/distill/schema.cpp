// The distill kind's sweep keys: its [grid] keys and its own sections (model/specs.hpp), and
// the [sweep] defaults it changes. No LibTorch here (the sweep fuzzer links this).
#include "model/specs.hpp"
#include "trials/schemas.hpp"

namespace attnlab::trials {

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

}  // namespace attnlab::trials
