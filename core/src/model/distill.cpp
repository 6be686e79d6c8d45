// Distill trial: train the student against the frozen teacher, then evaluate both
// (the loss and the metric names are written out in distill.hpp).
#include "model/distill.hpp"

#include "model/generate.hpp"
#include "model/gpt2.hpp"
#include "model/schedule.hpp"
#include "model/teacher.hpp"
#include "base/memory.hpp"
#include "base/sink.hpp"
#include "text/corpus.hpp"
#include "text/token_data.hpp"
#include "text/tokenizer.hpp"

#include <ATen/ATen.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>

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

std::string metric_T(std::int64_t T, const std::string& name) { return "eval/T" + std::to_string(T) + "/" + name; }

torch::Tensor total_regularizer(const GPT2& model) {
  torch::Tensor total;
  for (const auto& backend : model.backends()) {
    auto r = backend->regularizer();
    if (r.defined()) total = total.defined() ? total + r : r;
  }
  return total;
}

Density mean_density(const GPT2& model, std::int64_t T) {
  Density mean;
  const auto backends = model.backends();
  for (const auto& b : backends) {
    const auto d = density_of(*b, T);
    mean.element += d.element / double(backends.size());
    mean.block += d.block / double(backends.size());
  }
  return mean;
}

void set_hard(GPT2& model, bool hard) {
  for (const auto& b : model.backends()) b->set_hard(hard);
}

// Sums over the eval windows of one sequence length.
struct EvalSums {
  double teacher_nll = 0, student_nll = 0, kl = 0, agree = 0, tokens = 0;
  double student_seconds = 0;
  std::int64_t peak_bytes = 0;
};

// Teacher log-probs of each eval chunk, computed once per T and reused for the soft and hard
// student passes.
struct EvalChunk {
  at::Tensor inputs, targets, teacher_logp;
};

EvalSums evaluate_student(GPT2& student, const std::vector<EvalChunk>& chunks) {
  torch::NoGradGuard no_grad;
  EvalSums sums;
  for (const auto& chunk : chunks) {
    memory::reset_cpu_peak();
    const auto live_before = memory::cpu_current_bytes();
    const auto start = Clock::now();
    auto logits = student.forward(chunk.inputs);
    sums.student_seconds += seconds_since(start);
    sums.peak_bytes = std::max(sums.peak_bytes, memory::cpu_peak_bytes() - live_before);

    auto logp = at::log_softmax(logits, -1);
    const auto V = logp.size(-1);
    sums.student_nll += at::nll_loss(logp.reshape({-1, V}), chunk.targets.reshape(-1), {}, at::Reduction::Sum).item<double>();
    sums.kl += (chunk.teacher_logp.exp() * (chunk.teacher_logp - logp)).sum().item<double>();
    sums.agree += logp.argmax(-1).eq(chunk.teacher_logp.argmax(-1)).sum().item<double>();
    sums.tokens += double(chunk.targets.numel());
  }
  return sums;
}

// The split used for evaluation at T: valid, or test when valid is shorter than one window.
const text::TokenDataset* eval_dataset(const text::TokenDataset& valid, const text::TokenDataset& test, std::int64_t T) {
  if (valid.num_eval_windows(T) > 0) return &valid;
  if (test.num_eval_windows(T) > 0) return &test;
  return nullptr;
}

void evaluate(GPT2& teacher, GPT2& student, const text::TokenDataset& valid, const text::TokenDataset& test,
              const DistillSpec& spec, TrialSink& sink) {
  teacher.eval();
  student.eval();
  memory::install_cpu_tracker();
  const auto n_positions = teacher.config().n_positions;
  for (const auto T : spec.eval.seq_lens) {
    const std::string key = "eval.T" + std::to_string(T);
    if (T > n_positions) {
      sink.info(key, "skipped: T = " + std::to_string(T) + " exceeds the model's n_positions = " + std::to_string(n_positions));
      continue;
    }
    const auto* data = eval_dataset(valid, test, T);
    if (!data) {
      sink.info(key, "skipped: the valid and test splits are shorter than T + 1 = " + std::to_string(T + 1) + " tokens");
      continue;
    }
    const auto windows = std::min(data->num_eval_windows(T), spec.eval.batches * spec.batch);
    sink.info(key, std::to_string(windows) + " windows of " + std::to_string(T) + " tokens from the " +
                       (data == &valid ? "valid" : "test") + " split");

    std::vector<EvalChunk> chunks;
    EvalSums teacher_sums;
    {
      torch::NoGradGuard no_grad;
      for (std::int64_t first = 0; first < windows; first += spec.batch) {
        auto w = data->eval_windows(first, std::min(spec.batch, windows - first), T);
        EvalChunk c{w.narrow(1, 0, T), w.narrow(1, 1, T), at::log_softmax(teacher.forward(w.narrow(1, 0, T)), -1)};
        teacher_sums.teacher_nll += at::nll_loss(c.teacher_logp.reshape({-1, c.teacher_logp.size(-1)}),
                                                 c.targets.reshape(-1), {}, at::Reduction::Sum).item<double>();
        chunks.push_back(std::move(c));
      }
    }

    {
      torch::NoGradGuard no_grad;  // one untimed pass, so tokens/s does not include first-call setup
      student.forward(chunks.front().inputs);
    }
    const auto soft = evaluate_student(student, chunks);
    const double teacher_ppl = std::exp(teacher_sums.teacher_nll / soft.tokens);
    const double student_ppl = std::exp(soft.student_nll / soft.tokens);
    // The student's numbers, soft (prefix "") or hard ("hard_"), in one place.
    auto emit_student = [&](const std::string& prefix, const auto& sums) {
      const auto density = mean_density(student, T);
      sink.metric(metric_T(T, prefix + "student_ppl"), std::exp(sums.student_nll / sums.tokens));
      sink.metric(metric_T(T, prefix + "kl"), sums.kl / sums.tokens);
      sink.metric(metric_T(T, prefix + "agreement"), sums.agree / sums.tokens);
      sink.metric(metric_T(T, prefix + "tokens_per_s"), sums.tokens / std::max(sums.student_seconds, 1e-9));
      sink.metric(metric_T(T, prefix + "peak_mib"), double(sums.peak_bytes) / (1024.0 * 1024.0));
      sink.metric(metric_T(T, prefix + "density"), density.element);
      sink.metric(metric_T(T, prefix + "block_density"), density.block);
    };
    sink.metric(metric_T(T, "teacher_ppl"), teacher_ppl);
    sink.metric(metric_T(T, "delta_ppl"), student_ppl - teacher_ppl);
    emit_student("", soft);

    // Hard mode: only reported where it changes what the student computes.
    bool changed = false;
    {
      torch::NoGradGuard no_grad;
      const auto& probe = chunks.front().inputs;
      auto soft_logits = student.forward(probe);
      set_hard(student, true);
      changed = !at::allclose(student.forward(probe), soft_logits, 1e-5, 1e-6);
    }
    if (changed) emit_student("hard_", evaluate_student(student, chunks));
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
  context.dense = [&](const BackendInit& init) { return backends("dense", init, {}); };
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
      parts.loss.backward();
      if (spec.grad_clip > 0) torch::nn::utils::clip_grad_norm_(trainable, spec.grad_clip);
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
  evaluate(t_model, *student, valid_data, test_data, spec, sink);
  write_samples(t_model, *student, *tokenizer, spec, sink);
}

}  // namespace attnlab::model
