// Distill trial: train the student against the frozen teacher, then evaluate both
// (the loss and the metric names are written out in distill.hpp).
#include "model/distill.hpp"

#include "model/evaluate.hpp"
#include "model/generate.hpp"
#include "model/gpt2.hpp"
#include "model/schedule.hpp"
#include "model/teacher.hpp"
#include "base/memory.hpp"
#include "base/metrics.hpp"
#include "base/trial_stop.hpp"
#include "base/sink.hpp"
#include "text/corpus.hpp"
#include "text/token_data.hpp"
#include "text/tokenizer.hpp"

#include <ATen/ATen.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <optional>
#include <random>
#include <stdexcept>

namespace attnlab::model {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string metric_T(std::int64_t T, const std::string& name) { return metrics::eval_name(T, name); }

torch::Tensor total_regularizer(const GPT2& model) {
  torch::Tensor total;
  for (const auto& backend : model.backends()) {
    auto r = backend->regularizer();
    if (r.defined()) total = total.defined() ? total + r : r;
  }
  return total;
}

// Mean over layers of the student's attention density at T; `relative` is the block density
// as a fraction of the causal layout's at the same tile (1 = every causal tile computed).
struct StudentDensity {
  double element = 0.0, block = 0.0, relative = 0.0;
};
StudentDensity mean_density(const GPT2& model, std::int64_t T) {
  StudentDensity mean;
  const auto backends = model.backends();
  for (const auto& b : backends) {
    const auto layouts = b->layouts(T);
    const auto d = density_of(layouts);
    double relative = 0.0;
    for (const auto& layout : layouts)
      relative += layout->block_density() / std::max(causal_density(T, layout->tile).block, 1e-12) /
                  static_cast<double>(layouts.size());
    mean.element += d.element / double(backends.size());
    mean.block += d.block / double(backends.size());
    mean.relative += relative / double(backends.size());
  }
  return mean;
}

void set_hard(GPT2& model, bool hard) {
  for (const auto& b : model.backends()) b->set_hard(hard);
}

// The held-out split evaluated at T: the spec's, or the other one when it is shorter than one
// window (a small corpus).
const text::TokenDataset* eval_dataset(const text::TokenDataset& valid, const text::TokenDataset& test,
                                       const std::string& split, std::int64_t T) {
  const text::TokenDataset* first = split == "test" ? &test : &valid;
  const text::TokenDataset* second = split == "test" ? &valid : &test;
  if (first->num_eval_windows(T) > 0) return first;
  if (second->num_eval_windows(T) > 0) return second;
  return nullptr;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

// A model's speed on `inputs` (one untimed pass first): tokens per second of the whole
// forward, and milliseconds spent in its attention backends, each the median over the inputs.
struct Speed {
  double tokens_per_s = 0, attention_ms = 0;
};
Speed time_model(GPT2& model, const std::vector<at::Tensor>& inputs) {
  torch::NoGradGuard no_grad;
  model.forward(inputs.front());
  std::vector<double> seconds, attention;
  for (const auto& x : inputs) {
    double in_attention = 0;
    model.set_attention_clock(&in_attention);
    const auto start = Clock::now();
    model.forward(x);
    seconds.push_back(seconds_since(start) / static_cast<double>(x.numel()));
    attention.push_back(in_attention);
    model.set_attention_clock(nullptr);
  }
  return {1.0 / std::max(median(seconds), 1e-12), 1e3 * median(attention)};
}

// Per window (rows of one batch): the teacher's and student's NLL, KL(teacher || student),
// argmax agreement, tokens and bytes.
void window_stats(const at::Tensor& teacher_logp, const at::Tensor& student_logits, const at::Tensor& targets,
                  const at::Tensor& bytes_of_token, std::vector<WindowStats>& out) {
  const auto logp = at::log_softmax(student_logits, -1);
  const auto B = targets.size(0), T = targets.size(1), V = logp.size(-1);
  const auto flat_targets = targets.reshape(-1);
  const auto s_nll = at::nll_loss(logp.reshape({-1, V}), flat_targets, {}, at::Reduction::None).view({B, T}).sum(1);
  const auto t_nll =
      at::nll_loss(teacher_logp.reshape({-1, V}), flat_targets, {}, at::Reduction::None).view({B, T}).sum(1);
  const auto kl = (teacher_logp.exp() * (teacher_logp - logp)).sum({1, 2});
  const auto agree = logp.argmax(-1).eq(teacher_logp.argmax(-1)).sum(1);
  const auto bytes = bytes_of_token.index_select(0, flat_targets).view({B, T}).sum(1);
  for (std::int64_t b = 0; b < B; ++b)
    out.push_back({t_nll[b].item<double>(), s_nll[b].item<double>(), kl[b].item<double>(),
                   agree[b].item<double>(), static_cast<double>(T), bytes[b].item<double>()});
}

// Teacher and student on every held-out window at each eval length, side by side: the
// statistics with bootstrap intervals (evaluate.hpp), and in the same process the speed of the
// student against the dense teacher, timed both with LibTorch's attention and with attnlab's
// causal kernel (the faster of the two is the baseline). The student is evaluated in the mode
// it is deployed in: hard, when hard mode changes its output (and soft too when asked).
void evaluate(GPT2& teacher, GPT2& teacher_sdpa, GPT2& teacher_kernel, GPT2& student, const text::Tokenizer& tokenizer,
              const text::TokenDataset& valid, const text::TokenDataset& test, const DistillSpec& spec,
              TrialSink& sink) {
  teacher.eval();
  teacher_sdpa.eval();
  teacher_kernel.eval();
  student.eval();
  memory::install_cpu_tracker();
  std::vector<double> bytes_table;
  for (std::int64_t id = 0; id < tokenizer.vocab_size(); ++id) bytes_table.push_back(double(tokenizer.token_bytes(id)));
  const auto bytes_of_token = at::tensor(bytes_table, at::TensorOptions().dtype(at::kDouble));
  const auto n_positions = teacher.config().n_positions;
  for (const auto T : spec.eval.seq_lens) {
    const std::string key = "eval.T" + std::to_string(T);
    if (T > n_positions) {
      sink.info(key, "skipped: T = " + std::to_string(T) + " exceeds the model's n_positions = " + std::to_string(n_positions));
      continue;
    }
    const auto* data = eval_dataset(valid, test, spec.eval.split, T);
    if (!data) {
      sink.info(key, "skipped: the valid and test splits are shorter than T + 1 = " + std::to_string(T + 1) + " tokens");
      continue;
    }
    const std::int64_t all = data->num_eval_windows(T);
    const std::int64_t windows = spec.eval.windows > 0 ? std::min(all, spec.eval.windows) : all;
    sink.info(key, std::to_string(windows) + " of " + std::to_string(all) + " windows (evenly spaced) of " + std::to_string(T) +
                       " tokens from the " + (data == &valid ? "valid" : "test") + " split");
    // A subset (windows < all) is spread evenly over the split, so that it samples every part
    // of it rather than its first documents.
    auto batch_at = [&](std::int64_t first) {
      std::vector<std::int64_t> indices;
      for (std::int64_t j = first; j < std::min(first + spec.batch, windows); ++j) indices.push_back(j * all / windows);
      return data->eval_windows_at(indices, T);
    };

    // Which modes: hard where it changes what the student computes.
    bool changed = false;
    {
      torch::NoGradGuard no_grad;
      const auto probe = batch_at(0).narrow(1, 0, T);
      set_hard(student, false);
      const auto soft_logits = student.forward(probe);
      set_hard(student, true);
      changed = !at::allclose(student.forward(probe), soft_logits, 1e-5, 1e-6);
    }
    std::vector<bool> modes;
    if (!changed || spec.eval.soft) modes.push_back(false);
    if (changed) modes.push_back(true);

    std::vector<std::vector<WindowStats>> stats(modes.size());
    std::vector<std::int64_t> peak(modes.size(), 0);
    {
      torch::NoGradGuard no_grad;
      for (std::int64_t first = 0; first < windows; first += spec.batch) {
        const auto w = batch_at(first);
        const auto inputs = w.narrow(1, 0, T), targets = w.narrow(1, 1, T);
        const auto teacher_logp = at::log_softmax(teacher.forward(inputs), -1);
        for (std::size_t m = 0; m < modes.size(); ++m) {
          set_hard(student, modes[m]);
          memory::reset_cpu_peak();
          const auto live_before = memory::cpu_current_bytes();
          const auto logits = student.forward(inputs);
          peak[m] = std::max(peak[m], memory::cpu_peak_bytes() - live_before);
          window_stats(teacher_logp, logits, targets, bytes_of_token, stats[m]);
        }
      }
    }

    // Speed, in this process, on the first batches.
    std::vector<at::Tensor> timing;
    for (std::int64_t b = 0; b < spec.eval.timing_batches && b * spec.batch < windows; ++b)
      timing.push_back(batch_at(b * spec.batch).narrow(1, 0, T));
    const Speed with_sdpa = time_model(teacher_sdpa, timing), with_kernel = time_model(teacher_kernel, timing);
    const Speed& best = with_kernel.tokens_per_s > with_sdpa.tokens_per_s ? with_kernel : with_sdpa;

    const auto first = summarize(stats.front(), static_cast<int>(spec.eval.bootstrap), spec.seed * 7919 + T);
    sink.metric(metric_T(T, "teacher_ppl"), first.teacher_ppl);
    sink.metric(metric_T(T, "teacher_bpb"), first.teacher_bpb);
    sink.metric(metric_T(T, "windows"), double(first.windows));
    sink.metric(metric_T(T, "tokens"), first.tokens);
    sink.metric(metric_T(T, "teacher_sdpa_tokens_per_s"), with_sdpa.tokens_per_s);
    sink.metric(metric_T(T, "teacher_kernel_tokens_per_s"), with_kernel.tokens_per_s);
    sink.metric(metric_T(T, "teacher_tokens_per_s"), best.tokens_per_s);
    sink.metric(metric_T(T, "teacher_attention_ms"), best.attention_ms);
    for (std::size_t m = 0; m < modes.size(); ++m) {
      const std::string p = modes[m] ? "hard_" : "";
      set_hard(student, modes[m]);
      const auto s = summarize(stats[m], static_cast<int>(spec.eval.bootstrap), spec.seed * 7919 + T);
      const Speed speed = time_model(student, timing);
      const auto density = mean_density(student, T);
      auto interval = [&](const std::string& name, const Interval& i) {
        sink.metric(metric_T(T, p + name), i.value);
        sink.metric(metric_T(T, p + name + "_lo"), i.lo);
        sink.metric(metric_T(T, p + name + "_hi"), i.hi);
      };
      sink.metric(metric_T(T, p + "student_ppl"), s.student_ppl);
      sink.metric(metric_T(T, p + "student_bpb"), s.student_bpb);
      interval("delta_ppl", s.delta_ppl);
      interval("rel_delta_ppl", s.rel_delta_ppl);
      interval("kl", s.kl);
      interval("agreement", s.agreement);
      sink.metric(metric_T(T, p + "density"), density.element);
      sink.metric(metric_T(T, p + "block_density"), density.block);
      sink.metric(metric_T(T, p + "causal_fraction"), density.relative);
      sink.metric(metric_T(T, p + "tokens_per_s"), speed.tokens_per_s);
      sink.metric(metric_T(T, p + "attention_ms"), speed.attention_ms);
      sink.metric(metric_T(T, p + "speedup"), speed.tokens_per_s / std::max(best.tokens_per_s, 1e-12));
      sink.metric(metric_T(T, p + "attention_speedup"), best.attention_ms / std::max(speed.attention_ms, 1e-12));
      sink.metric(metric_T(T, p + "peak_mib"), double(peak[m]) / (1024.0 * 1024.0));
      // Per window (step = window index): what `attnlab compare --against` tests for a change.
      for (std::size_t w = 0; w < stats[m].size(); ++w) {
        const double tokens = std::max(stats[m][w].tokens, 1.0);
        sink.metric(metric_T(T, p + "window_nll"), stats[m][w].student_nll / tokens, static_cast<std::int64_t>(w));
        sink.metric(metric_T(T, p + "window_kl"), stats[m][w].kl / tokens, static_cast<std::int64_t>(w));
      }
    }
    set_hard(student, false);
  }
}

void write_samples(GPT2& teacher, GPT2& student, const text::Tokenizer& tokenizer, const DistillSpec& spec,
                   TrialSink& sink) {
  if (spec.eval.sample_tokens == 0) return;
  for (size_t i = 0; i < spec.eval.prompts.size(); ++i) {
    const auto& prompt = spec.eval.prompts[i];
    const auto ids = tokenizer.encode(prompt);
    if (ids.empty()) {
      sink.info("sample.skipped", "prompt \"" + prompt + "\" encodes to no tokens");
      continue;
    }
    for (const bool greedy : {true, false}) {
      // Same seed for teacher and student: with equal distributions they draw the same text.
      GenerateOptions options{spec.eval.sample_tokens, greedy, spec.eval.sample_temperature, spec.seed * 1000003 + i};
      const char* mode = greedy ? "greedy" : "sampled";
      sink.sample(prompt, "teacher", mode, to_valid_utf8(tokenizer.decode(generate(teacher, ids, options))));
      sink.sample(prompt, "student", mode, to_valid_utf8(tokenizer.decode(generate(student, ids, options))));
    }
  }
}

}  // namespace

void check_distill_spec(const DistillSpec& s) {
  // Ranges and choices are the keys' own declarations (specs.hpp); only what they cannot say
  // is checked here.
  distill_keys().check(s, "grid");
  eval_keys().check(s.eval, "eval");
  if (s.backend.empty()) throw std::invalid_argument("[grid] backend must name a plugin (see `attnlab backends`)");
}

// The global L2 norm of the trainable gradients; clipped to max_norm first when it is > 0
// (clip_grad_norm_ returns the norm before clipping).
static double gradient_norm(const std::vector<torch::Tensor>& trainable, double max_norm) {
  if (max_norm > 0) return torch::nn::utils::clip_grad_norm_(trainable, max_norm);
  double squares = 0;
  for (const auto& p : trainable)
    if (p.grad().defined()) squares += p.grad().pow(2).sum().item<double>();
  return std::sqrt(squares);
}

LossParts distill_loss(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                       const torch::Tensor& targets, const torch::Tensor& regularizer, const DistillSpec& spec) {
  const auto V = student_logits.size(-1);
  const double tau = spec.temperature;
  auto student_logp_tau = at::log_softmax(student_logits / tau, -1);
  auto teacher_logp_tau = at::log_softmax(teacher_logits.detach() / tau, -1);
  // KL(t || s) = sum_v p_t (log p_t - log p_s), averaged over the B*T positions.
  auto kl = (teacher_logp_tau.exp() * (teacher_logp_tau - student_logp_tau)).sum(-1).mean();

  // CE on the untempered distribution; kept out of the graph when it carries no weight.
  auto ce_input = spec.alpha_ce > 0 ? student_logits : student_logits.detach();
  auto ce = at::cross_entropy_loss(ce_input.reshape({-1, V}), targets.reshape(-1));

  auto loss = spec.alpha_kl * tau * tau * kl;
  if (spec.alpha_ce > 0) loss = loss + spec.alpha_ce * ce;
  LossParts parts;
  if (regularizer.defined()) {
    loss = loss + spec.lambda * regularizer;
    parts.reg = regularizer.item<double>();
  }
  parts.loss = loss;
  parts.ce = ce.item<double>();
  parts.kl = kl.item<double>();
  return parts;
}

void run_distill(const DataSpec& data, const TeacherSpec& teacher_spec, const DistillSpec& spec,
                 const BackendFactory& backends, const std::string& results_dir, TrialSink& sink) {
  check_distill_spec(spec);
  const auto tokenizer = text::make_tokenizer(data.tokenizer);
  const auto splits = text::load_corpus({data.corpus});
  const text::TokenCacheOptions cache{(std::filesystem::path(results_dir) / "cache").string()};
  const auto train_data = text::load_token_dataset(splits, "train", *tokenizer, cache);
  const auto valid_data = text::load_token_dataset(splits, "valid", *tokenizer, cache);
  const auto test_data = text::load_token_dataset(splits, "test", *tokenizer, cache);
  sink.info("corpus", splits.name + " (" + data.corpus + "): " + std::to_string(train_data.num_tokens()) + " train / " +
                          std::to_string(valid_data.num_tokens()) + " valid / " +
                          std::to_string(test_data.num_tokens()) + " test tokens");
  sink.info("tokenizer", tokenizer->fingerprint());

  // ---- teacher
  std::mt19937_64 teacher_rng(teacher_spec.seed);
  TeacherContext context;
  context.corpus = data.corpus;
  context.tokenizer_name = data.tokenizer;
  context.tokenizer_fingerprint = tokenizer->fingerprint();
  context.vocab_size = tokenizer->vocab_size();
  context.results_dir = results_dir;
  context.dense = [&](const BackendInit& init) {
    return backends("dense", init, {{"execution", teacher_spec.execution}});
  };
  context.train_batches = [&](std::int64_t B, std::int64_t T) { return train_data.random_windows(B, T, teacher_rng); };
  context.sink = &sink;
  const auto teacher = obtain_teacher(teacher_spec, context);
  sink.info("teacher.path", teacher.identity.path);
  sink.info("teacher.sha256", teacher.identity.sha256);
  sink.info("teacher.config", teacher.identity.config_json);
  sink.info("teacher.tokenizer", teacher.identity.tokenizer);
  GPT2& t_model = *teacher.model;
  if (spec.seq_len > t_model.config().n_positions)
    throw std::invalid_argument("[distill] seq_len = " + std::to_string(spec.seq_len) + " exceeds the teacher's n_positions = " +
                                std::to_string(t_model.config().n_positions));

  // ---- student: the teacher's weights, the trial's attention
  auto student = t_model.copy_with_attention(
      [&](const BackendInit& init) { return backends(spec.backend, init, spec.backend_params); }, spec.seed);
  for (auto& p : student->weights()) p.second.set_requires_grad(spec.train == "all");
  std::vector<torch::Tensor> trainable;
  for (auto& p : student->parameters())
    if (p.requires_grad()) trainable.push_back(p);
  std::int64_t n_trainable = 0;
  for (auto& p : trainable) n_trainable += p.numel();
  sink.metric("train/trainable_params", double(n_trainable));

  std::optional<torch::optim::AdamW> optimizer;
  if (!trainable.empty())
    optimizer.emplace(trainable, torch::optim::AdamWOptions(spec.lr).weight_decay(spec.weight_decay));
  else if (spec.steps > 0)
    sink.info("train.skipped", "backend '" + spec.backend + "' has no trainable parameters under train = \"" + spec.train +
                                   "\": no optimizer steps, evaluation only (the control)");

  // ---- train
  std::mt19937_64 rng(spec.seed);
  DivergenceGuard guard("student");
  double step_seconds = 0;
  std::int64_t timed_steps = 0;
  student->train();
  for (std::int64_t step = 0; step < spec.steps; ++step) {
    const bool log = step % spec.log_every == 0 || step + 1 == spec.steps;
    if (!optimizer && !log) continue;  // nothing to train: only the logged points are computed
    const auto start = Clock::now();
    const double lr = warmup_cosine_lr(spec.lr, step, spec.steps, spec.warmup_frac);
    auto batch = train_data.random_windows(spec.batch, spec.seq_len, rng);
    auto x = batch.narrow(1, 0, spec.seq_len), y = batch.narrow(1, 1, spec.seq_len);
    torch::Tensor teacher_logits;
    {
      torch::NoGradGuard no_grad;
      teacher_logits = t_model.forward(x);
    }
    for (const auto& b : student->backends()) b->on_step(step, spec.steps);

    LossParts parts;
    if (optimizer) {
      for (auto& group : optimizer->param_groups()) group.options().set_lr(lr);
      // Forward first, then the regularizer: backends like gating compute their penalty from
      // this forward's activations (argument evaluation order is unspecified in C++).
      auto student_logits = student->forward(x);
      parts = distill_loss(student_logits, teacher_logits, y, total_regularizer(*student), spec);
      optimizer->zero_grad();
      // Checked every step, before the update: a non-finite loss or gradient would poison
      // the weights, and every later step with them.
      guard.check(step, "train/loss", parts.loss.item<double>());
      parts.loss.backward();
      guard.check(step, "gradient norm", gradient_norm(trainable, spec.grad_clip));
      optimizer->step();
      // The first step pays one-time costs (allocations, plan caches); leave it out.
      if (step > 0 || spec.steps == 1) {
        step_seconds += seconds_since(start);
        ++timed_steps;
      }
    } else {
      torch::NoGradGuard no_grad;
      auto student_logits = student->forward(x);
      parts = distill_loss(student_logits, teacher_logits, y, total_regularizer(*student), spec);
      guard.check(step, "train/loss", parts.loss.item<double>());
    }

    if (log) {
      sink.metric("train/loss", parts.loss.item<double>(), step);
      sink.metric("train/ce", parts.ce, step);
      sink.metric("train/kl", parts.kl, step);
      sink.metric("train/reg", parts.reg, step);
      sink.metric("train/lr", optimizer ? lr : 0.0, step);
      const auto layer_backends = student->backends();
      for (size_t l = 0; l < layer_backends.size(); ++l)
        for (const auto& stat : layer_backends[l]->statistics())
          sink.metric("stat/L" + std::to_string(l) + "/" + stat.name, stat.value, step);
    }
    sink.progress(step + 1, spec.steps, "distill " + spec.backend);
  }
  if (timed_steps > 0) sink.metric("train/ms_per_step", 1e3 * step_seconds / double(timed_steps));

  // ---- evaluate and sample
  for (auto& p : student->parameters()) p.set_requires_grad(false);
  // The dense teacher timed both ways in eval: LibTorch's attention and attnlab's causal kernel.
  auto dense_copy = [&](const std::string& execution) {
    auto copy = t_model.copy_with_attention(
        [&](const BackendInit& init) { return backends("dense", init, {{"execution", execution}}); });
    for (auto& p : copy->parameters()) p.set_requires_grad(false);
    return copy;
  };
  auto teacher_sdpa = dense_copy("sdpa"), teacher_kernel = dense_copy("block_sparse");
  evaluate(t_model, *teacher_sdpa, *teacher_kernel, *student, *tokenizer, valid_data, test_data, spec, sink);
  write_samples(t_model, *student, *tokenizer, spec, sink);
}

}  // namespace attnlab::model
