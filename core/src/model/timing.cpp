// Models timed side by side in eval (timing.hpp).
#include "model/timing.hpp"

#include "base/median.hpp"

#include <torch/csrc/autograd/grad_mode.h>

namespace attnlab::model {
namespace {

// The selection time of the model's last forward: the statistic "select_ms" (backend.hpp)
// summed over layers; -1 when no layer reports one (no metric is recorded then).
double selection_ms(const GPT2& model) {
  double total = -1.0;
  for (const auto& backend : model.backends())
    for (const auto& stat : backend->statistics())
      if (stat.name == "select_ms") total = std::max(total, 0.0) + stat.value;
  return total;
}

}  // namespace

std::vector<Speed> time_interleaved(const std::vector<TimedModel>& models, const std::vector<at::Tensor>& inputs) {
  torch::NoGradGuard no_grad;
  for (const auto& m : models) {
    m.prepare();
    m.model->forward(inputs.front());
  }
  std::vector<std::vector<double>> seconds(models.size()), attention(models.size()), select(models.size());
  std::vector<Speed> out(models.size());
  for (const auto& x : inputs) {
    for (std::size_t i = 0; i < models.size(); ++i) {
      models[i].prepare();
      double in_attention = 0;
      models[i].model->set_attention_clock(&in_attention);
      const auto start = Clock::now();
      models[i].model->forward(x);
      const double per_token = seconds_since(start) / static_cast<double>(x.numel());
      models[i].model->set_attention_clock(nullptr);
      seconds[i].push_back(per_token);
      attention[i].push_back(in_attention);
      if (const double ms = selection_ms(*models[i].model); ms >= 0) select[i].push_back(ms);
      out[i].batch_tokens_per_s.push_back(1.0 / std::max(per_token, 1e-12));
    }
  }
  for (std::size_t i = 0; i < models.size(); ++i) {
    out[i].tokens_per_s = 1.0 / std::max(median_of(seconds[i]), 1e-12);
    out[i].attention_ms = 1e3 * median_of(attention[i]);
    if (!select[i].empty()) out[i].select_ms = median_of(select[i]);
  }
  return out;
}

}  // namespace attnlab::model
