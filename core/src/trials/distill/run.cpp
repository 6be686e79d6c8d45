// One distill trial: its resolved config read into the model's option structs by their key
// tables (model/specs.hpp), then model::run_distill.
#include "model/distill.hpp"
#include "trials/distill/distill.hpp"

namespace attnlab::trials {

void DistillKind::run(const TrialEnv& env, TrialSink& sink) const {
  const nlohmann::json& c = env.trial.config;
  auto section = [&](const char* name) { return c.contains(name) ? c[name] : nlohmann::json::object(); };
  const model::DataSpec data = model::data_keys().read(section("data"));
  const model::TeacherSpec teacher = model::teacher_keys().read(section("teacher"));
  model::DistillSpec spec = model::distill_keys().read(c["grid"]);
  spec.eval = model::eval_keys().read(section("eval"));
  spec.backend = env.trial.backend;
  spec.backend_params = env.trial.backend_params;
  if (!env.trial.config["grid"].contains("seed")) spec.seed = env.sweep.seed;  // no seed axis: the sweep's
  const PluginRegistry& registry = env.registry;
  model::BackendFactory factory = [&registry](const std::string& name, const BackendInit& init,
                                              const std::map<std::string, ParamValue>& params) {
    return registry.create(name, init, params);
  };
  model::run_distill(data, teacher, spec, factory, env.results_dir, sink);
}

const TrialKind& distill_kind() {
  static const DistillKind kind;
  return kind;
}

}  // namespace attnlab::trials
