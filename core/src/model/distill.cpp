// Distill trial: train the student against the frozen teacher, then evaluate both
// (the loss and the metric names are written out in distill.hpp).
#include "model/distill.hpp"

#include "model/evaluate.hpp"
#include "model/gates.hpp"
#include "model/generate.hpp"
#include "model/gpt2.hpp"
#include "model/recall_eval.hpp"
#include "model/schedule.hpp"
#include "model/teacher.hpp"
#include "base/memory.hpp"
#include "base/metrics.hpp"
#include "base/trial_stop.hpp"
#include "base/sink.hpp"
#include "text/corpus.hpp"
#include "text/recall.hpp"
#include "text/token_data.hpp"
#include "text/tokenizer.hpp"

#include <attnlab/kernels/attention.hpp>

#include <ATen/ATen.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
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

// Mean over layers of the density the student's attention executed on one batch. Elements:
// executed_density (masked T x T math counts as dense, a mixture counts every pass). Tiles:
// the CPU kernel's own count for this forward when it ran any (`kernel_tiles`, exact for
// mixtures too), else executed_density's. `relative` is the block density as a fraction of
// the causal layout's at the same tile (1 = every causal tile computed). Summed with += over
// the evaluated batches, then divided.
struct StudentDensity {
  double element = 0.0, block = 0.0, relative = 0.0;
  StudentDensity& operator+=(const StudentDensity& o) {
    element += o.element, block += o.block, relative += o.relative;
    return *this;
  }
  StudentDensity over(double n) const { return {element / n, block / n, relative / n}; }
};

// The selection time of the model's last forward: the statistic "select_ms" (backend.hpp)
// summed over layers; -1 when no layer reports one (no metric is recorded then).
double selection_ms(const GPT2& model) {
  double total = -1.0;
  for (const auto& backend : model.backends())
    for (const auto& stat : backend->statistics())
      if (stat.name == "select_ms") total = std::max(total, 0.0) + stat.value;
  return total;
}

StudentDensity mean_density(const GPT2& model, const AttentionShape& shape, std::int64_t kernel_tiles) {
  StudentDensity mean;
  const auto backends = model.backends();
  const double layers = static_cast<double>(backends.size());
  std::int64_t tile = 64;
  for (const auto& b : backends) {
    const auto layouts = b->layouts(shape.seq_len);
    const auto d = executed_density(*b, shape);
    if (!layouts.empty()) tile = layouts.front()->tile;
    mean.element += d.element / layers;
    mean.block += d.block / layers;
  }
  if (kernel_tiles > 0) {
    const double tiles_per_slice = std::pow(static_cast<double>((shape.seq_len + tile - 1) / tile), 2.0);
    mean.block = static_cast<double>(kernel_tiles) / (layers * static_cast<double>(shape.batch * shape.heads) * tiles_per_slice);
  }
  mean.relative = mean.block / std::max(causal_density(shape.seq_len, tile).block, 1e-12);
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

// One model timed in eval, and how to put it in its mode (a student's hard or soft).
struct TimedModel {
  GPT2* model;
  std::function<void()> prepare;
};

// A model's speed: tokens per second of the whole forward and milliseconds in its attention
// backends, medians over the batches; per batch, for the spread and for paired ratios.
struct Speed {
  double tokens_per_s = 0, attention_ms = 0;
  double select_ms = -1;  // median selection time per forward (all layers); -1: none reported
  std::vector<double> batch_tokens_per_s;
  double lo() const { return *std::min_element(batch_tokens_per_s.begin(), batch_tokens_per_s.end()); }
  double hi() const { return *std::max_element(batch_tokens_per_s.begin(), batch_tokens_per_s.end()); }
};

// Every model on every input, interleaved: input i runs model 0, 1, 2, ... before input i + 1,
// so a drift of the machine (clock, a neighbour's load) falls on every model alike rather
// than on whichever was timed last. One untimed pass of each model first.
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
    out[i].tokens_per_s = 1.0 / std::max(median(seconds[i]), 1e-12);
    out[i].attention_ms = 1e3 * median(attention[i]);
    if (!select[i].empty()) out[i].select_ms = median(select[i]);
  }
  return out;
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

// One student mode's metrics at T (prefix "hard_" in hard mode): quality with intervals,
// executed density, speed against the best teacher (and its spread over the timed batches:
// speedup_lo/_hi are the lowest and highest per-batch ratio, each batch timed back to back
// with the teacher), peak memory, and the per-window samples `attnlab compare` tests.
void write_student_metrics(TrialSink& sink, std::int64_t T, const std::string& p, const EvalSummary& s,
                           const StudentDensity& density, const Speed& speed, const Speed& best, std::int64_t peak,
                           const std::vector<WindowStats>& windows) {
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
  sink.metric(metric_T(T, p + "tokens_per_s_lo"), speed.lo());
  sink.metric(metric_T(T, p + "tokens_per_s_hi"), speed.hi());
  sink.metric(metric_T(T, p + "attention_ms"), speed.attention_ms);
  // The selection's share of each timed forward (all layers), included in the times above.
  if (speed.select_ms >= 0) sink.metric(metric_T(T, p + "select_ms"), speed.select_ms);
  sink.metric(metric_T(T, p + "speedup"), speed.tokens_per_s / std::max(best.tokens_per_s, 1e-12));
  std::vector<double> ratios;
  for (std::size_t b = 0; b < speed.batch_tokens_per_s.size(); ++b)
    ratios.push_back(speed.batch_tokens_per_s[b] / std::max(best.batch_tokens_per_s[b], 1e-12));
  sink.metric(metric_T(T, p + "speedup_lo"), *std::min_element(ratios.begin(), ratios.end()));
  sink.metric(metric_T(T, p + "speedup_hi"), *std::max_element(ratios.begin(), ratios.end()));
  sink.metric(metric_T(T, p + "attention_speedup"), best.attention_ms / std::max(speed.attention_ms, 1e-12));
  sink.metric(metric_T(T, p + "peak_mib"), double(peak) / (1024.0 * 1024.0));
  for (std::size_t w = 0; w < windows.size(); ++w) {
    const double tokens = std::max(windows[w].tokens, 1.0);
    sink.metric(metric_T(T, p + "window_nll"), windows[w].student_nll / tokens, static_cast<std::int64_t>(w));
    sink.metric(metric_T(T, p + "window_kl"), windows[w].kl / tokens, static_cast<std::int64_t>(w));
  }
}

// Recall at length T on the same held-out windows, each with its eval record: the teacher's
// accuracy and the student's in each mode, with intervals; bits/byte stay on the plain windows.
void evaluate_recall(GPT2& teacher, GPT2& student, const std::vector<bool>& modes, const text::TokenDataset& data,
                     const std::vector<std::vector<std::int64_t>>& batches, std::int64_t T, const RecallTask& task,
                     const DistillSpec& spec, TrialSink& sink) {
  std::vector<RecallWindow> teacher_stats;
  std::vector<std::vector<RecallWindow>> student_stats(modes.size());
  {
    torch::NoGradGuard no_grad;
    for (const auto& indices : batches) {
      const auto rb = text::recall_eval_batch(data, indices, T, task.spec, task.ids);
      const auto inputs = rb.tokens.narrow(1, 0, T);
      recall_stats(teacher.forward(inputs), rb, teacher_stats);
      for (std::size_t m = 0; m < modes.size(); ++m) {
        set_hard(student, modes[m]);
        recall_stats(student.forward(inputs), rb, student_stats[m]);
      }
    }
  }
  set_hard(student, false);
  const auto seed = spec.seed * 7919 + T + 17;
  auto interval = [&](const std::string& name, const Interval& i) {
    sink.metric(metric_T(T, name), i.value);
    sink.metric(metric_T(T, name + "_lo"), i.lo);
    sink.metric(metric_T(T, name + "_hi"), i.hi);
  };
  sink.metric(metric_T(T, "recall_chance"), task.chance());
  interval("teacher_recall_acc", summarize_recall(teacher_stats, int(spec.eval.bootstrap), seed).acc);
  for (std::size_t m = 0; m < modes.size(); ++m) {
    const std::string p = modes[m] ? "hard_" : "";
    const auto s = summarize_recall(student_stats[m], int(spec.eval.bootstrap), seed);
    interval(p + "recall_acc", s.acc);
    for (int bin = 0; bin < kRecallBins; ++bin)
      interval(p + "recall_acc_d" + std::to_string(recall_bin_lo(T, bin)), s.bins[bin]);
  }
}

// Teacher and student on every held-out window at each eval length, side by side: the
// statistics with bootstrap intervals (evaluate.hpp), and in the same process the speed of the
// student against the dense teacher, timed both with LibTorch's attention and with attnlab's
// causal kernel (the faster of the two is the baseline). The student is evaluated in the mode
// it is deployed in: hard, when hard mode changes its output (and soft too when asked).
void evaluate(GPT2& teacher, GPT2& teacher_sdpa, GPT2& teacher_kernel, GPT2& student, const text::Tokenizer& tokenizer,
              const text::TokenDataset& valid, const text::TokenDataset& test, const DistillSpec& spec,
              const RecallTask& recall, TrialSink& sink) {
  teacher.eval();
  teacher_sdpa.eval();
  teacher_kernel.eval();
  student.eval();
  memory::install_cpu_tracker();
  std::vector<double> bytes_table;
  for (std::int64_t id = 0; id < tokenizer.vocab_size(); ++id) bytes_table.push_back(double(tokenizer.token_bytes(id)));
  bytes_table.resize(std::size_t(teacher.config().vocab_size), 0.0);  // reserved recall ids: never a plain target
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
    auto indices_at = [&](std::int64_t first) {
      std::vector<std::int64_t> indices;
      for (std::int64_t j = first; j < std::min(first + spec.batch, windows); ++j) indices.push_back(j * all / windows);
      return indices;
    };
    auto batch_at = [&](std::int64_t first) { return data->eval_windows_at(indices_at(first), T); };

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
    // Soft is always evaluated: where hard mode differs, its KL gives the soft-vs-hard gap (what
    // deploying costs a student trained soft); its other metrics only with [eval] soft.
    std::vector<bool> modes{false};
    if (changed) modes.push_back(true);

    std::vector<std::vector<WindowStats>> stats(modes.size());
    std::vector<std::int64_t> peak(modes.size(), 0);
    // Input-dependent selections (topk, gating) differ per batch: the density reported is the
    // mean over every evaluated batch, not the last one's.
    std::vector<StudentDensity> density_sum(modes.size());
    std::int64_t batches = 0;
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
          kernels::reset_forward_tiles_computed();
          const auto logits = student.forward(inputs);
          const std::int64_t kernel_tiles = kernels::forward_tiles_computed();
          peak[m] = std::max(peak[m], memory::cpu_peak_bytes() - live_before);
          const auto& config = student.config();
          density_sum[m] += mean_density(student, {inputs.size(0), config.n_head, T, config.head_dim()}, kernel_tiles);
          window_stats(teacher_logp, logits, targets, bytes_of_token, stats[m]);
        }
        ++batches;
      }
    }

    // Speed, in this process, on the first batches (cycled when there are fewer), every model
    // interleaved per batch: the teacher both ways, then the student in each reported mode.
    const std::int64_t n_batches = (windows + spec.batch - 1) / spec.batch;
    std::vector<at::Tensor> timing;
    for (std::int64_t b = 0; b < spec.eval.timing_batches; ++b) timing.push_back(batch_at((b % n_batches) * spec.batch).narrow(1, 0, T));
    std::vector<std::size_t> reported;  // indices into modes
    for (std::size_t m = 0; m < modes.size(); ++m)
      if (modes[m] || !changed || spec.eval.soft) reported.push_back(m);
    std::vector<TimedModel> timed{{&teacher_sdpa, [] {}}, {&teacher_kernel, [] {}}};
    for (const auto m : reported) timed.push_back({&student, [&student, hard = bool(modes[m])] { set_hard(student, hard); }});
    const auto speeds = time_interleaved(timed, timing);
    const Speed& best = speeds[1].tokens_per_s > speeds[0].tokens_per_s ? speeds[1] : speeds[0];

    const auto first = summarize(stats.front(), static_cast<int>(spec.eval.bootstrap), spec.seed * 7919 + T);
    sink.metric(metric_T(T, "teacher_ppl"), first.teacher_ppl);
    sink.metric(metric_T(T, "teacher_bpb"), first.teacher_bpb);
    sink.metric(metric_T(T, "windows"), double(first.windows));
    sink.metric(metric_T(T, "tokens"), first.tokens);
    sink.metric(metric_T(T, "teacher_sdpa_tokens_per_s"), speeds[0].tokens_per_s);
    sink.metric(metric_T(T, "teacher_kernel_tokens_per_s"), speeds[1].tokens_per_s);
    sink.metric(metric_T(T, "teacher_tokens_per_s"), best.tokens_per_s);
    sink.metric(metric_T(T, "teacher_tokens_per_s_lo"), best.lo());
    sink.metric(metric_T(T, "teacher_tokens_per_s_hi"), best.hi());
    sink.metric(metric_T(T, "teacher_attention_ms"), best.attention_ms);
    sink.metric(metric_T(T, "timing_batches"), double(timing.size()));
    std::vector<EvalSummary> summaries;
    for (std::size_t m = 0; m < modes.size(); ++m)
      summaries.push_back(summarize(stats[m], static_cast<int>(spec.eval.bootstrap), spec.seed * 7919 + T));
    // KL(teacher || hard student) - KL(teacher || soft student), nats per token: 0 where hard
    // mode computes what soft mode does.
    sink.metric(metric_T(T, "soft_hard_gap"), changed ? summaries[1].kl.value - summaries[0].kl.value : 0.0);
    for (std::size_t r = 0; r < reported.size(); ++r) {
      const std::size_t m = reported[r];
      const auto density = density_sum[m].over(double(std::max<std::int64_t>(batches, 1)));
      write_student_metrics(sink, T, modes[m] ? "hard_" : "", summaries[m], density, speeds[2 + r], best, peak[m], stats[m]);
    }
    set_hard(student, false);
    if (recall.fits(T)) {
      std::vector<std::vector<std::int64_t>> recall_batches;
      for (std::int64_t first = 0; first < windows; first += spec.batch) recall_batches.push_back(indices_at(first));
      evaluate_recall(teacher, student, modes, *data, recall_batches, T, recall, spec, sink);
    } else if (recall.enabled()) {
      sink.info(key + ".recall", "skipped: T < 8 * recall_pairs");
    }
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

// The teacher's gates (gates.hpp), before any student trains: recorded with the trial, and with
// [teacher] require_gates a miss fails it here.
void check_gates(GPT2& teacher, const TeacherSpec& teacher_spec, const RecallTask& recall,
                 const text::TokenDataset& valid, const text::TokenDataset& test, const DistillSpec& spec,
                 const text::Tokenizer& tokenizer, const BackendFactory& backends, TrialSink& sink) {
  const std::int64_t T = teacher_spec.checkpoint.empty() ? teacher_spec.seq_len : spec.seq_len;
  auto windowed = teacher.copy_with_attention([&](const BackendInit& init) {
    return backends("masks", init, {{"pattern", std::string("window:128")}});
  });
  for (auto& p : windowed->parameters()) p.set_requires_grad(false);
  windowed->eval();
  const auto gates = measure_gates(teacher, *windowed, T, eval_dataset(valid, test, spec.eval.split, T),
                                   eval_dataset(valid, test, spec.eval.split, 2 * T), recall, tokenizer);
  record_gates(gates, sink);
  if (teacher_spec.require_gates && !gates.passed())
    throw std::runtime_error("the teacher misses a gate ([teacher] require_gates = true): " + gates.describe());
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
                       const torch::Tensor& targets, const torch::Tensor& regularizer, const DistillSpec& spec,
                       const torch::Tensor& answer) {
  const auto V = student_logits.size(-1);
  const double tau = spec.temperature;
  auto student_logp_tau = at::log_softmax(student_logits / tau, -1);
  auto teacher_logp_tau = at::log_softmax(teacher_logits.detach() / tau, -1);
  // KL(t || s) = sum_v p_t (log p_t - log p_s) per position [B, T], averaged over the B*T positions.
  auto kl_at = (teacher_logp_tau.exp() * (teacher_logp_tau - student_logp_tau)).sum(-1);
  auto kl = kl_at.mean();
  // The answer positions are ~1% of the tokens: without their own weight the recall they carry
  // is lost in the all-position mean.
  torch::Tensor answer_kl;
  if (spec.answer_weight > 0 && answer.defined() && answer.any().item<bool>())
    answer_kl = kl_at.masked_select(answer).mean();

  // CE on the untempered distribution; kept out of the graph when it carries no weight.
  auto ce_input = spec.alpha_ce > 0 ? student_logits : student_logits.detach();
  auto ce = at::cross_entropy_loss(ce_input.reshape({-1, V}), targets.reshape(-1));

  auto loss = spec.alpha_kl * tau * tau * kl;
  if (answer_kl.defined()) loss = loss + spec.answer_weight * tau * tau * answer_kl;
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
  const auto train_data = load("train"), valid_data = load("valid"), test_data = load("test");
  if (recall.enabled())
    sink.info("recall", std::to_string(recall.spec.pairs) + " pairs in " + std::to_string(recall.spec.fraction) +
                            " of the training windows, keys " + std::to_string(recall.ids.first_key) + "+" +
                            std::to_string(recall.ids.keys) + ", values " + std::to_string(recall.ids.first_value) +
                            "+" + std::to_string(recall.ids.values) + "; " + std::to_string(remapped) +
                            " text tokens in that range remapped to '?'");
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
  context.vocab_size = recall.enabled() ? recall.ids.vocab_size : tokenizer->vocab_size();
  context.recall = recall.spec;
  context.results_dir = results_dir;
  context.dense = [&](const BackendInit& init) {
    return backends("dense", init, {{"execution", teacher_spec.execution}});
  };
  context.train_batches = [&](std::int64_t B, std::int64_t T, double record_fraction) {
    auto with_fraction = recall.spec;
    with_fraction.fraction = record_fraction;
    return text::recall_train_batch(train_data, B, T, with_fraction, recall.ids, teacher_rng);
  };
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

  if (recall.enabled()) check_gates(t_model, teacher_spec, recall, valid_data, test_data, spec, *tokenizer, backends, sink);

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
    const auto rb = text::recall_train_batch(train_data, spec.batch, spec.seq_len, recall.spec, recall.ids, rng);
    auto x = rb.tokens.narrow(1, 0, spec.seq_len), y = rb.tokens.narrow(1, 1, spec.seq_len);
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
      parts = distill_loss(student_logits, teacher_logits, y, total_regularizer(*student), spec, rb.answer);
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
      parts = distill_loss(student_logits, teacher_logits, y, total_regularizer(*student), spec, rb.answer);
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
  evaluate(t_model, *teacher_sdpa, *teacher_kernel, *student, *tokenizer, valid_data, test_data, spec, recall, sink);
  write_samples(t_model, *student, *tokenizer, spec, sink);
}

}  // namespace attnlab::model
