// Distill trial: maps a trial's resolved config onto the model's option structs and runs it.
#include "runtime/runner.hpp"
#include "runtime/sink.hpp"

#include "model/distill.hpp"

namespace attnlab {
namespace {

using json = nlohmann::json;

template <typename T>
void read(const json& object, const char* key, T& into) {
  if (object.contains(key)) into = object[key].get<T>();
}

}  // namespace

void run_distill_trial(const SweepSpec& sweep, const TrialSpec& trial, const PluginRegistry& registry,
                       const RunOptions& options, TrialSink& sink) {
  const json& c = trial.config;
  DataSpec data;
  if (c.contains("data")) {
    read(c["data"], "corpus", data.corpus);
    read(c["data"], "tokenizer", data.tokenizer);
  }
  TeacherSpec teacher;
  if (c.contains("teacher")) {
    const json& t = c["teacher"];
    read(t, "checkpoint", teacher.checkpoint);
    read(t, "n_layer", teacher.n_layer);
    read(t, "n_head", teacher.n_head);
    read(t, "n_embd", teacher.n_embd);
    read(t, "block_size", teacher.block_size);
    read(t, "steps", teacher.steps);
    read(t, "batch", teacher.batch);
    read(t, "seq_len", teacher.seq_len);
    read(t, "lr", teacher.lr);
    read(t, "seed", teacher.seed);
  }
  DistillSpec spec;
  spec.backend = trial.backend;
  spec.backend_params = trial.backend_params;
  spec.seed = sweep.seed;
  const json& g = c["grid"];
  read(g, "seq_len", spec.seq_len);
  read(g, "batch", spec.batch);
  read(g, "steps", spec.steps);
  read(g, "log_every", spec.log_every);
  read(g, "lr", spec.lr);
  read(g, "weight_decay", spec.weight_decay);
  read(g, "warmup_frac", spec.warmup_frac);
  read(g, "grad_clip", spec.grad_clip);
  read(g, "alpha_ce", spec.alpha_ce);
  read(g, "alpha_kl", spec.alpha_kl);
  read(g, "temperature", spec.temperature);
  read(g, "lambda", spec.lambda);
  read(g, "train", spec.train);
  if (c.contains("eval")) {
    const json& e = c["eval"];
    read(e, "seq_lens", spec.eval_seq_lens);
    read(e, "batches", spec.eval_batches);
    read(e, "prompts", spec.prompts);
    read(e, "sample_tokens", spec.sample_tokens);
    read(e, "sample_temperature", spec.sample_temperature);
  }
  BackendFactory factory = [&registry](const std::string& name, const BackendInit& init,
                                       const std::map<std::string, ParamValue>& params) {
    return registry.create(name, init, params);
  };
  run_distill(data, teacher, spec, factory, options.results_dir, sink);
}

}  // namespace attnlab
