// Teacher: load a checkpoint, or train a small dense GPT-2 once and cache it (see teacher.hpp).
#include "model/teacher.hpp"

#include "model/schedule.hpp"
#include "model/safetensors.hpp"
#include "model/sha256.hpp"
#include "base/sink.hpp"
#include "base/trial_stop.hpp"

#include <ATen/ATen.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace attnlab::model {
namespace fs = std::filesystem;

namespace {

constexpr int kRecipeVersion = 1;  // bump when training below changes, so old caches are not reused

GPT2Config trained_config(const TeacherSpec& spec, std::int64_t vocab_size) {
  GPT2Config c;
  c.vocab_size = vocab_size;
  c.n_positions = spec.block_size;
  c.n_embd = spec.n_embd;
  c.n_layer = spec.n_layer;
  c.n_head = spec.n_head;
  c.positions = spec.positions;
  c.qk_norm = spec.qk_norm;
  c.shifted_key_heads = spec.shifted_key_heads;
  return c;
}

nlohmann::json recipe(const TeacherSpec& spec, const TeacherContext& context) {
  nlohmann::json r = {{"recipe_version", kRecipeVersion},
          {"model", trained_config(spec, context.vocab_size).to_json()},
          {"corpus", context.corpus},
          {"tokenizer", context.tokenizer_fingerprint},
          {"steps", spec.steps},
          {"batch", spec.batch},
          {"seq_len", spec.seq_len},
          {"lr", spec.lr},
          {"seed", spec.seed}};
  // Only when not the default, so that teachers cached before the key existed stay valid.
  if (spec.execution != "sdpa") r["execution"] = spec.execution;
  const TeacherSpec defaults;
  if (spec.short_seq_len != defaults.short_seq_len)
    r["short_seq_len"] = spec.short_seq_len, r["short_frac"] = spec.short_frac;
  if (spec.short_batch != defaults.short_batch) r["short_batch"] = spec.short_batch;
  if (spec.short_recall_fraction != defaults.short_recall_fraction)
    r["short_recall_fraction"] = spec.short_recall_fraction;
  if (spec.beta2 != defaults.beta2) r["beta2"] = spec.beta2;
  if (spec.warmup_frac != defaults.warmup_frac) r["warmup_frac"] = spec.warmup_frac;
  if (spec.answer_weight != defaults.answer_weight) r["answer_weight"] = spec.answer_weight;
  if (context.recall.enabled())
    r["recall"] = {{"pairs", context.recall.pairs}, {"fraction", context.recall.fraction},
                   {"keys", context.recall.keys}, {"values", context.recall.values},
                   {"records", "hash-split"}};  // train records exclude the eval records by hash
  return r;
}

// The keys' declared ranges (specs.hpp), and what they cannot say: the window fits the model.
void check_spec(const TeacherSpec& s) {
  teacher_keys().check(s, "teacher");
  if (s.seq_len > s.block_size)
    throw std::invalid_argument("[teacher] seq_len = " + std::to_string(s.seq_len) + " must be <= block_size = " +
                                std::to_string(s.block_size));
  if (s.short_seq_len > s.seq_len)
    throw std::invalid_argument("[teacher] short_seq_len = " + std::to_string(s.short_seq_len) +
                                " must be <= seq_len = " + std::to_string(s.seq_len));
}

bool short_phase(const TeacherSpec& spec, std::int64_t step) {
  return spec.short_seq_len > 0 && double(step) < spec.short_frac * double(spec.steps);
}

// The window of a step: short_seq_len for the first short_frac of the steps, then seq_len.
std::int64_t step_seq_len(const TeacherSpec& spec, std::int64_t step) {
  return short_phase(spec, step) ? spec.short_seq_len : spec.seq_len;
}

// The windows of a step: short_batch (when set) in the short phase, batch otherwise.
std::int64_t step_batch(const TeacherSpec& spec, std::int64_t step) {
  return short_phase(spec, step) && spec.short_batch > 0 ? spec.short_batch : spec.batch;
}

// The share of a step's windows with a record: short_recall_fraction in the short phase (when
// set), [data] recall_fraction otherwise.
double step_record_fraction(const TeacherSpec& spec, const text::RecallSpec& recall, std::int64_t step) {
  return short_phase(spec, step) && spec.short_recall_fraction >= 0 ? spec.short_recall_fraction : recall.fraction;
}

// Mean CE over all positions, plus answer_weight x the mean CE over the recall answer positions
// (the few tokens the recall task is about would otherwise weigh ~1% of the loss). Also the
// batch's recall accuracy (-1 without answers), for steps-to-recall.
struct TeacherLoss {
  torch::Tensor loss;
  double recall = -1;
};
TeacherLoss teacher_loss(const at::Tensor& logits, const text::RecallBatch& batch, double answer_weight) {
  const auto T = logits.size(1), V = logits.size(-1);
  const auto y = batch.tokens.narrow(1, 1, T);
  const auto ce = at::cross_entropy_loss(logits.reshape({-1, V}), y.reshape(-1), {}, at::Reduction::None).view_as(y);
  TeacherLoss out{ce.mean()};
  const auto answers = batch.answer.sum().item<std::int64_t>();
  if (answers == 0) return out;
  if (answer_weight > 0) out.loss = out.loss + answer_weight * ce.masked_select(batch.answer).mean();
  out.recall = logits.detach().argmax(-1).eq(y).logical_and(batch.answer).sum().item<double>() / double(answers);
  return out;
}

struct TrainResult {
  double loss = 0;
  std::int64_t steps_to_recall = -1;  // first step whose moving recall accuracy reached 0.95 (-1: never)
};

// Next-token training of a dense model; AdamW with decay on matrices only, warmup + cosine.
TrainResult train(GPT2& model, const TeacherSpec& spec, const TeacherContext& context) {
  std::vector<torch::Tensor> decay, no_decay;
  for (auto& p : model.parameters()) (p.dim() >= 2 ? decay : no_decay).push_back(p);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(
                                 torch::optim::AdamWOptions(spec.lr).betas({0.9, spec.beta2}).weight_decay(0.1)));
  groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(
                                    torch::optim::AdamWOptions(spec.lr).betas({0.9, spec.beta2}).weight_decay(0.0)));
  torch::optim::AdamW optimizer(std::move(groups), torch::optim::AdamWOptions(spec.lr));

  model.train();
  DivergenceGuard guard("teacher");
  TrainResult result;
  double& loss_value = result.loss;
  double recall_ema = 0;  // moving recall accuracy of the training batches (weight 0.1 per step)
  const std::int64_t log_every = std::max<std::int64_t>(1, spec.steps / 20);
  for (std::int64_t step = 0; step < spec.steps; ++step) {
    const double lr = warmup_cosine_lr(spec.lr, step, spec.steps, spec.warmup_frac);
    for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
    const auto T = step_seq_len(spec, step);
    const auto batch = context.train_batches(step_batch(spec, step), T, step_record_fraction(spec, context.recall, step));
    const auto logits = model.forward(batch.tokens.narrow(1, 0, T));
    const auto parts = teacher_loss(logits, batch, spec.answer_weight);
    const auto& loss = parts.loss;
    if (parts.recall >= 0) {
      recall_ema = 0.9 * recall_ema + 0.1 * parts.recall;
      if (recall_ema >= 0.95 && result.steps_to_recall < 0) result.steps_to_recall = step;
    }
    optimizer.zero_grad();
    loss_value = loss.item<double>();
    guard.check(step, "train_loss", loss_value);
    loss.backward();
    guard.check(step, "gradient norm", torch::nn::utils::clip_grad_norm_(model.parameters(), 1.0));
    optimizer.step();
    if (context.sink) {
      context.sink->progress(step + 1, spec.steps, "training teacher");
      if (step % log_every == 0 || step + 1 == spec.steps) {
        context.sink->metric("teacher/train_loss", loss_value, step);
        if (parts.recall >= 0) context.sink->metric("teacher/train_recall_acc", parts.recall, step);
      }
    }
  }
  model.eval();
  return result;
}

// What training cost, as metrics of every trial that uses this teacher (trained or cached).
void record_training(const nlohmann::json& described, const TeacherContext& context) {
  if (!context.sink) return;
  for (const char* key : {"train_seconds", "steps_to_recall"})
    if (described.contains(key) && described[key].is_number())
      context.sink->metric(std::string("teacher/") + key, described[key].get<double>());
}

void freeze(GPT2& model) {
  model.eval();
  for (auto& p : model.parameters()) p.set_requires_grad(false);
}

}  // namespace

std::string teacher_cache_dir(const TeacherSpec& spec, const TeacherContext& context) {
  const auto key = sha256_hex(recipe(spec, context).dump()).substr(0, 16);
  return (fs::path(context.results_dir) / "teachers" / key).string();
}

Teacher obtain_teacher(const TeacherSpec& spec, const TeacherContext& context) {
  Teacher teacher;
  teacher.identity.tokenizer = context.tokenizer_fingerprint;

  if (!spec.checkpoint.empty()) {
    // A real GPT-2 speaks GPT-2's BPE; any other tokenizer would feed it meaningless ids.
    if (fs::is_directory(spec.checkpoint) && context.tokenizer_name != "gpt2")
      throw std::invalid_argument("[teacher] checkpoint " + spec.checkpoint +
                                  " is a Hugging Face GPT-2: set [data] tokenizer = \"gpt2\" (got \"" +
                                  context.tokenizer_name + "\")");
    teacher.model = load_any(spec.checkpoint, context.dense);
    if (!fs::is_directory(spec.checkpoint)) {
      const auto meta = safetensors::read_header(spec.checkpoint).metadata;
      auto it = meta.find("attnlab.tokenizer");
      if (it != meta.end() && it->second != context.tokenizer_fingerprint)
        throw std::invalid_argument("[teacher] checkpoint " + spec.checkpoint + " was trained with tokenizer " +
                                    it->second + ", this trial uses " + context.tokenizer_fingerprint);
    }
    if (context.vocab_size > teacher.model->config().vocab_size)
      throw std::invalid_argument("[teacher] tokenizer has " + std::to_string(context.vocab_size) +
                                  " ids but the checkpoint's vocab_size is " +
                                  std::to_string(teacher.model->config().vocab_size));
    teacher.identity.path = fs::absolute(weights_file(spec.checkpoint)).string();
    teacher.identity.config_json = teacher.model->config().to_json().dump();
  } else {
    check_spec(spec);
    const fs::path dir = teacher_cache_dir(spec, context);
    const auto weights = dir / "model.safetensors", config = dir / "config.json";
    nlohmann::json described = recipe(spec, context);
    if (fs::exists(weights) && fs::exists(config)) {
      teacher.model = load_checkpoint(weights.string(), context.dense);
      std::ifstream in(config);
      described = nlohmann::json::parse(in);
      if (context.sink) context.sink->info("teacher.source", "cache hit: " + dir.string());
    } else {
      if (!context.train_batches) throw std::logic_error("obtain_teacher: training needs train_batches");
      auto model = std::make_shared<GPT2>(trained_config(spec, context.vocab_size), context.dense, spec.seed);
      const auto start = std::chrono::steady_clock::now();
      const auto trained = train(*model, spec, context);
      described["final_train_loss"] = trained.loss;
      if (context.recall.enabled()) described["steps_to_recall"] = trained.steps_to_recall;
      described["train_seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      fs::create_directories(dir);
      save_checkpoint(*model, weights.string(), {{"attnlab.tokenizer", context.tokenizer_fingerprint}});
      const auto tmp = config.string() + ".tmp";
      std::ofstream(tmp) << described.dump(2) << "\n";
      fs::rename(tmp, config);
      teacher.model = model;
      if (context.sink) context.sink->info("teacher.source", "trained and cached: " + dir.string());
    }
    teacher.identity.path = fs::absolute(weights).string();
    teacher.identity.config_json = described.dump();
    record_training(described, context);
  }
  teacher.identity.sha256 = sha256_file(teacher.identity.path);
  freeze(*teacher.model);
  return teacher;
}

}  // namespace attnlab::model
