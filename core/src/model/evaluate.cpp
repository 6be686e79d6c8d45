// The distill trial's evaluation (evaluate.hpp): per eval length, the windows, the modes the
// student is evaluated in, one pass over every window, the speed, then the metrics.
#include "model/evaluate.hpp"

#include "model/bootstrap.hpp"
#include "model/distill.hpp"
#include "model/timing.hpp"
#include "base/memory.hpp"
#include "base/metrics.hpp"
#include "base/sink.hpp"
#include "text/recall.hpp"

#include <attnlab/kernels/attention.hpp>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <optional>

namespace attnlab::model {
namespace {

std::string metric_T(std::int64_t T, const std::string& name) { return metrics::eval_name(T, name); }

// name, name_lo and name_hi at T.
void write_interval(TrialSink& sink, std::int64_t T, const std::string& name, const Interval& i) {
  sink.metric(metric_T(T, name), i.value);
  sink.metric(metric_T(T, name + "_lo"), i.lo);
  sink.metric(metric_T(T, name + "_hi"), i.hi);
}

void set_hard(GPT2& model, bool hard) {
  for (const auto& b : model.backends()) b->set_hard(hard);
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

StudentDensity mean_density(const GPT2& model, const AttentionShape& shape, std::int64_t kernel_tiles) {
  StudentDensity mean;
  const auto backends = model.backends();
  const double layers = static_cast<double>(backends.size());
  std::int64_t tile = 64;
  for (const auto& b : backends) {
    const auto layouts = b->layouts(shape.seq_len);  // once: an input-dependent one is rebuilt per call
    const auto d = executed_density(*b, shape, layouts);
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
  const auto kl = kl_per_position(teacher_logp, logp).sum(1);
  const auto agree = logp.argmax(-1).eq(teacher_logp.argmax(-1)).sum(1);
  const auto bytes = bytes_of_token.index_select(0, flat_targets).view({B, T}).sum(1);
  for (std::int64_t b = 0; b < B; ++b)
    out.push_back({t_nll[b].item<double>(), s_nll[b].item<double>(), kl[b].item<double>(),
                   agree[b].item<double>(), static_cast<double>(T), bytes[b].item<double>()});
}

// One student mode's cost at T (prefix "hard_" in hard mode): executed density, speed against
// the best teacher (and its spread over the timed batches: speedup_lo/_hi are the lowest and
// highest per-batch ratio, each batch timed back to back with the teacher), peak memory.
void write_student_cost(TrialSink& sink, std::int64_t T, const std::string& p, const StudentDensity& density,
                        const Speed& speed, const Speed& best, std::int64_t peak) {
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
}

// One student mode's metrics at T: quality with intervals, its cost, and the per-window samples
// `attnlab compare` tests.
void write_student_metrics(TrialSink& sink, std::int64_t T, const std::string& p, const EvalSummary& s,
                           const StudentDensity& density, const Speed& speed, const Speed& best, std::int64_t peak,
                           const std::vector<WindowStats>& windows) {
  sink.metric(metric_T(T, p + "student_ppl"), s.student_ppl);
  sink.metric(metric_T(T, p + "student_bpb"), s.student_bpb);
  write_interval(sink, T, p + "delta_ppl", s.delta_ppl);
  write_interval(sink, T, p + "rel_delta_ppl", s.rel_delta_ppl);
  write_interval(sink, T, p + "kl", s.kl);
  write_interval(sink, T, p + "agreement", s.agreement);
  write_student_cost(sink, T, p, density, speed, best, peak);
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
  sink.metric(metric_T(T, "recall_chance"), task.chance());
  write_interval(sink, T, "teacher_recall_acc", summarize_recall(teacher_stats, int(spec.eval.bootstrap), seed).acc);
  for (std::size_t m = 0; m < modes.size(); ++m) {
    const std::string p = modes[m] ? "hard_" : "";
    const auto s = summarize_recall(student_stats[m], int(spec.eval.bootstrap), seed);
    write_interval(sink, T, p + "recall_acc", s.acc);
    for (int bin = 0; bin < kRecallBins; ++bin)
      write_interval(sink, T, p + "recall_acc_d" + std::to_string(recall_bin_lo(T, bin)), s.bins[bin]);
  }
}

// The windows evaluated at T: `count` of the split's `all`, in batches of `batch`. A subset
// (count < all) is spread evenly over the split, so that it samples every part of it rather
// than its first documents.
struct EvalWindows {
  const text::TokenDataset* data;
  std::int64_t T, all, count, batch;

  std::int64_t batches() const { return (count + batch - 1) / batch; }
  std::vector<std::int64_t> indices_at(std::int64_t first) const {
    std::vector<std::int64_t> indices;
    for (std::int64_t j = first; j < std::min(first + batch, count); ++j) indices.push_back(j * all / count);
    return indices;
  }
  at::Tensor at(std::int64_t first) const { return data->eval_windows_at(indices_at(first), T); }
};

// Which modes the student is evaluated in: soft always; hard too where it changes what the
// student computes. Soft's KL then gives the soft-vs-hard gap (what deploying costs a student
// trained soft); its other metrics are written only with [eval] soft.
std::vector<bool> student_modes(GPT2& student, const EvalWindows& windows) {
  torch::NoGradGuard no_grad;
  const auto probe = windows.at(0).narrow(1, 0, windows.T);
  set_hard(student, false);
  const auto soft_logits = student.forward(probe);
  set_hard(student, true);
  const bool changed = !at::allclose(student.forward(probe), soft_logits, 1e-5, 1e-6);
  return changed ? std::vector<bool>{false, true} : std::vector<bool>{false};
}

// What one student mode showed over every evaluated window. Input-dependent selections (topk,
// gating) differ per batch: the density is the mean over every evaluated batch, not the last.
struct ModeStats {
  std::vector<WindowStats> windows;
  std::int64_t peak = 0;  // bytes above what was live before the forward
  StudentDensity density_sum;
};

// The student's forward on one batch, measured: its peak memory above what was live before,
// and the density it executed (the kernel's own tile count when it ran).
at::Tensor measured_forward(GPT2& student, const at::Tensor& inputs, std::int64_t& peak, StudentDensity& density_sum) {
  memory::reset_cpu_peak();
  const auto live_before = memory::cpu_current_bytes();
  kernels::reset_forward_tiles_computed();
  auto logits = student.forward(inputs);
  const std::int64_t kernel_tiles = kernels::forward_tiles_computed();
  peak = std::max(peak, memory::cpu_peak_bytes() - live_before);
  const auto& config = student.config();
  density_sum += mean_density(student, {inputs.size(0), config.n_head, inputs.size(1), config.head_dim()}, kernel_tiles);
  return logits;
}

std::vector<ModeStats> pass_over_windows(GPT2& teacher, GPT2& student, const std::vector<bool>& modes,
                                         const EvalWindows& windows, const at::Tensor& bytes_of_token) {
  torch::NoGradGuard no_grad;
  const auto T = windows.T;
  std::vector<ModeStats> out(modes.size());
  for (std::int64_t first = 0; first < windows.count; first += windows.batch) {
    const auto w = windows.at(first);
    const auto inputs = w.narrow(1, 0, T), targets = w.narrow(1, 1, T);
    const auto teacher_logp = at::log_softmax(teacher.forward(inputs), -1);
    for (std::size_t m = 0; m < modes.size(); ++m) {
      set_hard(student, modes[m]);
      const auto logits = measured_forward(student, inputs, out[m].peak, out[m].density_sum);
      window_stats(teacher_logp, logits, targets, bytes_of_token, out[m].windows);
    }
  }
  return out;
}

// Speed, in this process, on the first batches (cycled when there are fewer), every model
// interleaved per batch: the teacher both ways, then the student in each reported mode.
std::vector<Speed> time_models(const EvalModels& models, const std::vector<bool>& reported_modes,
                               const EvalWindows& windows, std::int64_t timing_batches) {
  std::vector<at::Tensor> timing;
  for (std::int64_t b = 0; b < timing_batches; ++b)
    timing.push_back(windows.at((b % windows.batches()) * windows.batch).narrow(1, 0, windows.T));
  std::vector<TimedModel> timed{{&models.teacher_sdpa, [] {}}, {&models.teacher_kernel, [] {}}};
  for (const bool hard : reported_modes)
    timed.push_back({&models.student, [&student = models.student, hard] { set_hard(student, hard); }});
  return time_interleaved(timed, timing);
}

// The teacher's speed both ways (speeds[0]: LibTorch's attention, speeds[1]: the causal kernel)
// and the faster of the two, which every student's speedup is against.
void write_teacher_speed(TrialSink& sink, std::int64_t T, const std::vector<Speed>& speeds, const Speed& best,
                         std::int64_t timing_batches) {
  sink.metric(metric_T(T, "teacher_sdpa_tokens_per_s"), speeds[0].tokens_per_s);
  sink.metric(metric_T(T, "teacher_kernel_tokens_per_s"), speeds[1].tokens_per_s);
  sink.metric(metric_T(T, "teacher_tokens_per_s"), best.tokens_per_s);
  sink.metric(metric_T(T, "teacher_tokens_per_s_lo"), best.lo());
  sink.metric(metric_T(T, "teacher_tokens_per_s_hi"), best.hi());
  sink.metric(metric_T(T, "teacher_attention_ms"), best.attention_ms);
  sink.metric(metric_T(T, "timing_batches"), double(timing_batches));
}

void write_teacher_metrics(TrialSink& sink, std::int64_t T, const EvalSummary& first, const std::vector<Speed>& speeds,
                           const Speed& best, std::int64_t timing_batches) {
  sink.metric(metric_T(T, "teacher_ppl"), first.teacher_ppl);
  sink.metric(metric_T(T, "teacher_bpb"), first.teacher_bpb);
  sink.metric(metric_T(T, "windows"), double(first.windows));
  sink.metric(metric_T(T, "tokens"), first.tokens);
  write_teacher_speed(sink, T, speeds, best, timing_batches);
}

// Teacher and student at one eval length, on the windows chosen for it.
void evaluate_at(const EvalModels& models, const EvalWindows& windows, const at::Tensor& bytes_of_token,
                 const RecallTask& recall, const DistillSpec& spec, TrialSink& sink) {
  const auto T = windows.T;
  const auto modes = student_modes(models.student, windows);
  const bool changed = modes.size() > 1;
  const auto stats = pass_over_windows(models.teacher, models.student, modes, windows, bytes_of_token);
  std::vector<std::size_t> reported;  // indices into modes
  std::vector<bool> reported_modes;
  for (std::size_t m = 0; m < modes.size(); ++m)
    if (modes[m] || !changed || spec.eval.soft) reported.push_back(m), reported_modes.push_back(modes[m]);
  const auto speeds = time_models(models, reported_modes, windows, spec.eval.timing_batches);
  const Speed& best = speeds[1].tokens_per_s > speeds[0].tokens_per_s ? speeds[1] : speeds[0];

  std::vector<EvalSummary> summaries;
  for (const auto& mode : stats)
    summaries.push_back(summarize(mode.windows, static_cast<int>(spec.eval.bootstrap), spec.seed * 7919 + T));
  write_teacher_metrics(sink, T, summaries.front(), speeds, best, spec.eval.timing_batches);
  // KL(teacher || hard student) - KL(teacher || soft student), nats per token: 0 where hard
  // mode computes what soft mode does.
  sink.metric(metric_T(T, "soft_hard_gap"), changed ? summaries[1].kl.value - summaries[0].kl.value : 0.0);
  for (std::size_t r = 0; r < reported.size(); ++r) {
    const auto& mode = stats[reported[r]];
    const auto density = mode.density_sum.over(double(std::max<std::int64_t>(windows.batches(), 1)));
    write_student_metrics(sink, T, modes[reported[r]] ? "hard_" : "", summaries[reported[r]], density, speeds[2 + r],
                          best, mode.peak, mode.windows);
  }
  set_hard(models.student, false);
  if (recall.fits(T)) {
    std::vector<std::vector<std::int64_t>> recall_batches;
    for (std::int64_t first = 0; first < windows.count; first += windows.batch)
      recall_batches.push_back(windows.indices_at(first));
    evaluate_recall(models.teacher, models.student, modes, *windows.data, recall_batches, T, recall, spec, sink);
  } else if (recall.enabled()) {
    sink.info("eval.T" + std::to_string(T) + ".recall", "skipped: T < 8 * recall_pairs");
  }
}

// Cost only at T ([eval] cost_seq_lens): the deployed student (hard where it differs) and the
// teacher both ways, timed interleaved on the windows (timing_batches batches); the density the
// student executed on them and its peak memory. No quality: past the teacher's training length
// its perplexity and recall say little, and evaluating them there costs most of a trial.
void cost_at(const EvalModels& models, const EvalWindows& windows, const DistillSpec& spec, TrialSink& sink) {
  torch::NoGradGuard no_grad;
  const auto T = windows.T;
  const auto modes = student_modes(models.student, windows);
  const bool hard = modes.back();
  set_hard(models.student, hard);
  StudentDensity density;
  std::int64_t peak = 0;
  for (std::int64_t first = 0; first < windows.count; first += windows.batch)
    measured_forward(models.student, windows.at(first).narrow(1, 0, T), peak, density);
  const auto speeds = time_models(models, {hard}, windows, spec.eval.timing_batches);
  const Speed& best = speeds[1].tokens_per_s > speeds[0].tokens_per_s ? speeds[1] : speeds[0];
  write_teacher_speed(sink, T, speeds, best, spec.eval.timing_batches);
  write_student_cost(sink, T, modes.size() > 1 ? "hard_" : "", density.over(double(std::max<std::int64_t>(windows.batches(), 1))),
                     speeds[2], best, peak);
  set_hard(models.student, false);
}

// Bytes of text per token id, as a double tensor to sum per window (bits per byte).
at::Tensor bytes_per_token(const text::Tokenizer& tokenizer, std::int64_t vocab_size) {
  std::vector<double> bytes_table;
  for (std::int64_t id = 0; id < tokenizer.vocab_size(); ++id) bytes_table.push_back(double(tokenizer.token_bytes(id)));
  bytes_table.resize(std::size_t(vocab_size), 0.0);  // reserved recall ids: never a plain target
  return at::tensor(bytes_table, at::TensorOptions().dtype(at::kDouble));
}

}  // namespace

const text::TokenDataset* eval_dataset(const text::TokenDataset& valid, const text::TokenDataset& test,
                                       const std::string& split, std::int64_t T) {
  const text::TokenDataset* first = split == "test" ? &test : &valid;
  const text::TokenDataset* second = split == "test" ? &valid : &test;
  if (first->num_eval_windows(T) > 0) return first;
  if (second->num_eval_windows(T) > 0) return second;
  return nullptr;
}

void evaluate(const EvalModels& models, const EvalData& data, const DistillSpec& spec, TrialSink& sink) {
  for (GPT2* model : {&models.teacher, &models.teacher_sdpa, &models.teacher_kernel, &models.student}) model->eval();
  memory::install_cpu_tracker();
  const auto bytes_of_token = bytes_per_token(data.tokenizer, models.teacher.config().vocab_size);
  const auto n_positions = models.teacher.config().n_positions;
  // The split with windows of T tokens, and how many of them an eval length uses (cost-only
  // lengths: the timed batches); null where the model or the splits are too short (logged).
  auto windows_at = [&](std::int64_t T, std::int64_t wanted, bool cost_only) -> std::optional<EvalWindows> {
    const std::string key = "eval.T" + std::to_string(T);
    if (T > n_positions) {
      sink.info(key, "skipped: T = " + std::to_string(T) + " exceeds the model's n_positions = " + std::to_string(n_positions));
      return std::nullopt;
    }
    const auto* split = eval_dataset(data.valid, data.test, spec.eval.split, T);
    if (!split) {
      sink.info(key, "skipped: the valid and test splits are shorter than T + 1 = " + std::to_string(T + 1) + " tokens");
      return std::nullopt;
    }
    const std::int64_t all = split->num_eval_windows(T);
    const EvalWindows windows{split, T, all, wanted > 0 ? std::min(all, wanted) : all, spec.batch};
    sink.info(key, std::to_string(windows.count) + " of " + std::to_string(all) + " windows (evenly spaced) of " +
                       std::to_string(T) + " tokens from the " + (split == &data.valid ? "valid" : "test") + " split" +
                       (cost_only ? ", cost only" : ""));
    return windows;
  };
  for (const auto T : spec.eval.seq_lens)
    if (const auto windows = windows_at(T, spec.eval.windows, false)) evaluate_at(models, *windows, bytes_of_token, data.recall, spec, sink);
  for (const auto T : spec.eval.cost_seq_lens)
    if (const auto windows = windows_at(T, spec.eval.timing_batches * spec.batch, true)) cost_at(models, *windows, spec, sink);
}

}  // namespace attnlab::model
