// Distill trial: train the student against the frozen teacher, then evaluate both
// (the loss and the metric names are written out in distill.hpp).
#include "model/distill.hpp"

#include "model/evaluate.hpp"
#include "model/gates.hpp"
#include "model/generate.hpp"
#include "model/gpt2.hpp"
#include "model/head_search.hpp"
#include "model/recall_eval.hpp"
#include "model/schedule.hpp"
#include "model/timing.hpp"
#include "model/teacher.hpp"
#include "base/trial_stop.hpp"
#include "base/sink.hpp"
#include "text/corpus.hpp"
#include "text/recall.hpp"
#include "text/token_data.hpp"
#include "text/tokenizer.hpp"

#include <ATen/ATen.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <random>
#include <stdexcept>

namespace attnlab::model {
namespace {

torch::Tensor total_regularizer(const GPT2& model) {
  torch::Tensor total;
  for (const auto& backend : model.backends()) {
    auto r = backend->regularizer();
    if (r.defined()) total = total.defined() ? total + r : r;
  }
  return total;
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
      // Reserved recall ids past a BPE vocabulary have no text: left out of the decoded sample.
      auto text_of = [&](std::vector<std::int64_t> out) {
        out.erase(std::remove_if(out.begin(), out.end(), [&](auto id) { return id >= tokenizer.vocab_size(); }),
                  out.end());
        return to_valid_utf8(tokenizer.decode(out));
      };
      sink.sample(prompt, "teacher", mode, text_of(generate(teacher, ids, options)));
      sink.sample(prompt, "student", mode, text_of(generate(student, ids, options)));
    }
  }
}

}  // namespace

void check_distill_spec(const DistillSpec& s) {
  // Ranges and choices are the keys' own declarations (specs.hpp); only what they cannot say
  // is checked here.
  distill_keys().check(s, "grid");
  eval_keys().check(s.eval, "eval");
  for (const auto T : s.eval.cost_seq_lens)
    if (std::find(s.eval.seq_lens.begin(), s.eval.seq_lens.end(), T) != s.eval.seq_lens.end())
      throw std::invalid_argument("[eval] T = " + std::to_string(T) + " is in both seq_lens and cost_seq_lens: "
                                  "seq_lens already measures its cost (remove it from cost_seq_lens)");
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

torch::Tensor kl_per_position(const torch::Tensor& teacher_logp, const torch::Tensor& student_logp) {
  return (teacher_logp.exp() * (teacher_logp - student_logp)).sum(-1);
}

torch::Tensor answer_kl(const torch::Tensor& kl_at, const torch::Tensor& answer, double answer_weight) {
  if (answer_weight > 0 && answer.defined() && answer.any().item<bool>()) return kl_at.masked_select(answer).mean();
  return {};
}

LossParts distill_loss(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                       const torch::Tensor& targets, const torch::Tensor& regularizer, const DistillSpec& spec,
                       const torch::Tensor& answer) {
  const auto V = student_logits.size(-1);
  const double tau = spec.temperature;
  auto student_logp_tau = at::log_softmax(student_logits / tau, -1);
  auto teacher_logp_tau = at::log_softmax(teacher_logits.detach() / tau, -1);
  // Per position [B, T], averaged over the B*T positions.
  auto kl_at = kl_per_position(teacher_logp_tau, student_logp_tau);
  auto kl = kl_at.mean();
  // The answer positions are ~1% of the tokens: without their own weight the recall they carry
  // is lost in the all-position mean.
  const auto at_answers = answer_kl(kl_at, answer, spec.answer_weight);

  // CE on the untempered distribution; kept out of the graph when it carries no weight.
  auto ce_input = spec.alpha_ce > 0 ? student_logits : student_logits.detach();
  auto ce = at::cross_entropy_loss(ce_input.reshape({-1, V}), targets.reshape(-1));

  auto loss = spec.alpha_kl * tau * tau * kl;
  if (at_answers.defined()) loss = loss + spec.answer_weight * tau * tau * at_answers;
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

namespace {

// What run_distill was given, handed down its steps.
struct DistillInputs {
  const DataSpec& data;
  const TeacherSpec& teacher;
  const DistillSpec& spec;
  const BackendFactory& backends;
  const std::string& results_dir;
  TrialSink& sink;
};

// The trial's text: the tokenizer, the recall task and the three splits.
struct DistillCorpus {
  std::unique_ptr<text::Tokenizer> tokenizer;
  RecallTask recall;
  text::TokenDataset train, valid, test;
};

DistillCorpus load_distill_corpus(const DistillInputs& in) {
  const auto& data = in.data;
  auto tokenizer = text::make_tokenizer(data.tokenizer);
  const auto splits = text::load_corpus({data.corpus});
  const text::TokenCacheOptions cache{(std::filesystem::path(in.results_dir) / "cache").string()};
  RecallTask recall;
  recall.spec = {data.recall_pairs, data.recall_fraction, data.recall_keys, data.recall_values};
  if (recall.enabled()) recall.ids = text::recall_ids(recall.spec, *tokenizer);
  // Reserved recall ids the text itself uses (bytes >= 128 in non-ASCII text) become '?', so a
  // key or value is never also a piece of text.
  std::int64_t remapped = 0;
  auto load = [&](const std::string& split) {
    auto d = text::load_token_dataset(splits, split, *tokenizer, cache);
    if (!recall.enabled() || !recall.ids.in_text_range) return d;
    auto ids = d.ids();
    remapped += text::remap_reserved(ids, recall.ids, '?');
    return text::TokenDataset(std::move(ids), d.vocab_size());
  };
  auto train = load("train"), valid = load("valid"), test = load("test");
  if (recall.enabled())
    in.sink.info("recall", std::to_string(recall.spec.pairs) + " pairs in " + std::to_string(recall.spec.fraction) +
                               " of the training windows, keys " + std::to_string(recall.ids.first_key) + "+" +
                               std::to_string(recall.ids.keys) + ", values " + std::to_string(recall.ids.first_value) +
                               "+" + std::to_string(recall.ids.values) + "; " + std::to_string(remapped) +
                               " text tokens in that range remapped to '?'");
  in.sink.info("corpus", splits.name + " (" + data.corpus + "): " + std::to_string(train.num_tokens()) + " train / " +
                             std::to_string(valid.num_tokens()) + " valid / " + std::to_string(test.num_tokens()) +
                             " test tokens");
  in.sink.info("tokenizer", tokenizer->fingerprint());
  return {std::move(tokenizer), recall, std::move(train), std::move(valid), std::move(test)};
}

// The teacher's gates (gates.hpp), before any student trains: recorded with the trial, and with
// [teacher] require_gates a miss fails it here.
void check_gates(const DistillInputs& in, const DistillCorpus& corpus, GPT2& teacher) {
  const auto& split = in.spec.eval.split;
  const std::int64_t T = in.teacher.checkpoint.empty() ? in.teacher.seq_len : in.spec.seq_len;
  // On the kernel: the masked T x T reference at 2T = 4096 held ~7 GB and took minutes.
  auto windowed = teacher.copy_with_attention([&](const BackendInit& init) {
    return in.backends("masks", init,
                       {{"pattern", std::string("window:128")}, {"execution", std::string("block_sparse")}});
  });
  for (auto& p : windowed->parameters()) p.set_requires_grad(false);
  windowed->eval();
  const auto gates = measure_gates(teacher, *windowed, T, eval_dataset(corpus.valid, corpus.test, split, T),
                                   eval_dataset(corpus.valid, corpus.test, split, 2 * T), corpus.recall,
                                   *corpus.tokenizer);
  record_gates(gates, in.sink);
  if (in.teacher.require_gates && !gates.passed())
    throw std::runtime_error("the teacher misses a gate ([teacher] require_gates = true): " + gates.describe());
}

// ---- teacher: loaded, or trained and cached (teacher.hpp), then gated
Teacher load_teacher(const DistillInputs& in, const DistillCorpus& corpus) {
  const auto& recall = corpus.recall;
  std::mt19937_64 teacher_rng(in.teacher.seed);
  TeacherContext context;
  context.corpus = in.data.corpus;
  context.tokenizer_name = in.data.tokenizer;
  context.tokenizer_fingerprint = corpus.tokenizer->fingerprint();
  context.vocab_size = recall.enabled() ? recall.ids.vocab_size : corpus.tokenizer->vocab_size();
  context.recall = recall.spec;
  context.results_dir = in.results_dir;
  context.dense = [&](const BackendInit& init) {
    return in.backends("dense", init, {{"execution", in.teacher.execution}});
  };
  context.train_batches = [&](std::int64_t B, std::int64_t T, double record_fraction) {
    auto with_fraction = recall.spec;
    with_fraction.fraction = record_fraction;
    return text::recall_train_batch(corpus.train, B, T, with_fraction, recall.ids, teacher_rng);
  };
  context.sink = &in.sink;
  auto teacher = obtain_teacher(in.teacher, context);
  in.sink.info("teacher.path", teacher.identity.path);
  in.sink.info("teacher.sha256", teacher.identity.sha256);
  in.sink.info("teacher.config", teacher.identity.config_json);
  in.sink.info("teacher.tokenizer", teacher.identity.tokenizer);
  const auto n_positions = teacher.model->config().n_positions;
  if (in.spec.seq_len > n_positions)
    throw std::invalid_argument("[distill] seq_len = " + std::to_string(in.spec.seq_len) +
                                " exceeds the teacher's n_positions = " + std::to_string(n_positions));
  if (recall.enabled()) check_gates(in, corpus, *teacher.model);
  return teacher;
}

// ---- student: the teacher's weights, the trial's attention
struct Student {
  std::shared_ptr<GPT2> model;
  std::vector<torch::Tensor> trainable;
  std::unique_ptr<torch::optim::AdamW> optimizer;  // null: nothing to train (the control)
  std::vector<double> lr_scale;                     // per param group: its lr / the schedule's lr
};

// Two param groups: the backend's parameters at lr, and (train = "all") the model's weights at
// weights_lr. A mask's few logits need a large step to move in a short budget; the same step on
// the weights would wreck what the teacher learned.
Student make_student(const DistillInputs& in, const GPT2& teacher) {
  const auto& spec = in.spec;
  Student student;
  student.model = teacher.copy_with_attention(
      [&](const BackendInit& init) { return in.backends(spec.backend, init, spec.backend_params); }, spec.seed);
  std::vector<torch::Tensor> weights, backend;
  for (auto& p : student.model->weights()) {
    p.second.set_requires_grad(spec.train == "all");
    if (spec.train == "all") weights.push_back(p.second);
  }
  for (auto& p : student.model->backend_parameters())
    if (p.requires_grad()) backend.push_back(p);
  student.trainable = backend;
  student.trainable.insert(student.trainable.end(), weights.begin(), weights.end());
  std::int64_t n_trainable = 0;
  for (auto& p : student.trainable) n_trainable += p.numel();
  in.sink.metric("train/trainable_params", double(n_trainable));
  const double weights_lr = spec.weights_lr > 0 ? spec.weights_lr : spec.lr;
  std::vector<torch::optim::OptimizerParamGroup> groups;
  for (auto [group, lr] : {std::pair{&backend, spec.lr}, std::pair{&weights, weights_lr}}) {
    if (group->empty()) continue;
    groups.emplace_back(*group, std::make_unique<torch::optim::AdamWOptions>(
                                    torch::optim::AdamWOptions(lr).weight_decay(spec.weight_decay)));
    student.lr_scale.push_back(lr / spec.lr);
  }
  if (!groups.empty())
    student.optimizer = std::make_unique<torch::optim::AdamW>(
        std::move(groups), torch::optim::AdamWOptions(spec.lr).weight_decay(spec.weight_decay));
  else if (spec.steps > 0)
    in.sink.info("train.skipped", "backend '" + spec.backend + "' has no trainable parameters under train = \"" +
                                      spec.train + "\": no optimizer steps, evaluation only (the control)");
  return student;
}

// The per-head search baseline (blend selection = "search", and its random control) chooses
// before training, on calibration batches of its own (the seed draws them).
void search(const DistillInputs& in, const DistillCorpus& corpus, GPT2& teacher, Student& student) {
  const auto& spec = in.spec;
  std::mt19937_64 rng(spec.seed ^ 0x5ea2c4u);
  search_heads(*student.model, teacher, [&] {
    const auto rb =
        text::recall_train_batch(corpus.train, spec.batch, spec.seq_len, corpus.recall.spec, corpus.recall.ids, rng);
    return CalibrationBatch{rb.tokens.narrow(1, 0, spec.seq_len), rb.answer};
  }, spec.answer_weight, spec.seed, in.sink);
}

// ---- train
// The student's loss on one batch against the teacher's logits, checked every step before any
// update: a non-finite loss would poison the weights, and every later step with them.
LossParts student_loss(GPT2& student, const text::RecallBatch& rb, const torch::Tensor& teacher_logits,
                       std::int64_t step, const DistillSpec& spec, DivergenceGuard& guard) {
  // Forward first, then the regularizer: backends like gating compute their penalty from
  // this forward's activations (argument evaluation order is unspecified in C++).
  auto student_logits = student.forward(rb.tokens.narrow(1, 0, spec.seq_len));
  auto parts = distill_loss(student_logits, teacher_logits, rb.tokens.narrow(1, 1, spec.seq_len),
                            total_regularizer(student), spec, rb.answer);
  guard.check(step, "train/loss", parts.loss.item<double>());
  return parts;
}

// One step's loss on batch rb; with an optimizer, also its update (the gradient checked first).
LossParts train_step(Student& student, GPT2& teacher, const text::RecallBatch& rb, std::int64_t step, double lr,
                     const DistillSpec& spec, DivergenceGuard& guard) {
  torch::Tensor teacher_logits;
  {
    torch::NoGradGuard no_grad;
    teacher_logits = teacher.forward(rb.tokens.narrow(1, 0, spec.seq_len));
  }
  for (const auto& b : student.model->backends()) b->on_step(step, spec.steps);
  if (!student.optimizer) {
    torch::NoGradGuard no_grad;
    return student_loss(*student.model, rb, teacher_logits, step, spec, guard);
  }
  auto& groups = student.optimizer->param_groups();
  for (std::size_t g = 0; g < groups.size(); ++g) groups[g].options().set_lr(lr * student.lr_scale[g]);
  auto parts = student_loss(*student.model, rb, teacher_logits, step, spec, guard);
  if (!parts.loss.requires_grad())  // e.g. a plugin that registers a parameter its forward never uses
    throw std::runtime_error("backend '" + spec.backend + "' has trainable parameters, but none of them reaches the loss "
                             "(no gradient at step " + std::to_string(step) + "): register only the parameters "
                             "the forward uses, or set steps = 0");
  student.optimizer->zero_grad();
  parts.loss.backward();
  guard.check(step, "gradient norm", gradient_norm(student.trainable, spec.grad_clip));
  student.optimizer->step();
  return parts;
}

void log_step(TrialSink& sink, const GPT2& student, const LossParts& parts, double lr, std::int64_t step) {
  sink.metric("train/loss", parts.loss.item<double>(), step);
  sink.metric("train/ce", parts.ce, step);
  sink.metric("train/kl", parts.kl, step);
  sink.metric("train/reg", parts.reg, step);
  sink.metric("train/lr", lr, step);
  const auto layer_backends = student.backends();
  for (size_t l = 0; l < layer_backends.size(); ++l)
    for (const auto& stat : layer_backends[l]->statistics())
      sink.metric("stat/L" + std::to_string(l) + "/" + stat.name, stat.value, step);
}

void train(const DistillInputs& in, const DistillCorpus& corpus, GPT2& teacher, Student& student) {
  const auto& spec = in.spec;
  std::mt19937_64 rng(spec.seed);
  DivergenceGuard guard("student");
  double step_seconds = 0;
  std::int64_t timed_steps = 0;
  student.model->train();
  for (std::int64_t step = 0; step < spec.steps; ++step) {
    const bool log = step % spec.log_every == 0 || step + 1 == spec.steps;
    if (!student.optimizer && !log) continue;  // nothing to train: only the logged points are computed
    const auto start = Clock::now();
    const double lr = warmup_cosine_lr(spec.lr, step, spec.steps, spec.warmup_frac);
    const auto rb =
        text::recall_train_batch(corpus.train, spec.batch, spec.seq_len, corpus.recall.spec, corpus.recall.ids, rng);
    const auto parts = train_step(student, teacher, rb, step, lr, spec, guard);
    // The first step pays one-time costs (allocations, plan caches); leave it out.
    if (student.optimizer && (step > 0 || spec.steps == 1)) {
      step_seconds += seconds_since(start);
      ++timed_steps;
    }
    if (log) log_step(in.sink, *student.model, parts, student.optimizer ? lr : 0.0, step);
    in.sink.progress(step + 1, spec.steps, "distill " + spec.backend);
  }
  if (timed_steps > 0) in.sink.metric("train/ms_per_step", 1e3 * step_seconds / double(timed_steps));
}

// ---- evaluate and sample
void evaluate_and_sample(const DistillInputs& in, const DistillCorpus& corpus, GPT2& teacher, GPT2& student) {
  for (auto& p : student.parameters()) p.set_requires_grad(false);
  // The dense teacher timed both ways in eval: LibTorch's attention and attnlab's causal kernel.
  auto dense_copy = [&](const std::string& execution) {
    auto copy = teacher.copy_with_attention(
        [&](const BackendInit& init) { return in.backends("dense", init, {{"execution", execution}}); });
    for (auto& p : copy->parameters()) p.set_requires_grad(false);
    return copy;
  };
  auto teacher_sdpa = dense_copy("sdpa"), teacher_kernel = dense_copy("block_sparse");
  evaluate({teacher, *teacher_sdpa, *teacher_kernel, student},
           {*corpus.tokenizer, corpus.valid, corpus.test, corpus.recall}, in.spec, in.sink);
  write_samples(teacher, student, *corpus.tokenizer, in.spec, in.sink);
}

}  // namespace

void run_distill(const DataSpec& data, const TeacherSpec& teacher_spec, const DistillSpec& spec,
                 const BackendFactory& backends, const std::string& results_dir, TrialSink& sink) {
  check_distill_spec(spec);
  const DistillInputs in{data, teacher_spec, spec, backends, results_dir, sink};
  const auto corpus = load_distill_corpus(in);
  const auto teacher = load_teacher(in, corpus);
  auto student = make_student(in, *teacher.model);
  search(in, corpus, *teacher.model, student);
  train(in, corpus, *teacher.model, student);
  evaluate_and_sample(in, corpus, *teacher.model, *student.model);
}

}  // namespace attnlab::model
