#include "base/metrics.hpp"

#include <cstdio>

namespace attnlab::metrics {
namespace {

constexpr Better L = Better::Lower, H = Better::Higher, N = Better::Neither;

// Every metric a trial records: one line each (see the top of metrics.hpp). Order matters only
// for the summary views' column order and docs/RESULTS.md.
const std::vector<Metric> kMetricList = {
    // kind = "bench" (trials/bench/measure.cpp)
    {"bench", "time/median_ms", "ms", L, "%.3f", kFinal, "median_ms", "median wall time of one pass over the timed runs (after `warmup`): `repeats` of them, more while they add up to less than `[sweep] min_time_s`"},
    {"bench", "time/min_ms", "ms", L, "%.3f", kFinal, "", "fastest timed run"},
    {"bench", "time/max_ms", "ms", L, "%.3f", kFinal, "", "slowest timed run"},
    {"bench", "time/p10_ms", "ms", L, "%.3f", kFinal, "", "10th percentile of the timed runs"},
    {"bench", "time/p90_ms", "ms", L, "%.3f", kFinal, "", "90th percentile of the timed runs"},
    {"bench", "time/mean_ms", "ms", L, "%.3f", kFinal, "", "mean of the timed runs"},
    {"bench", "time/cv", "ratio", L, "%.3f", kFinal, "cv", "coefficient of variation of the timed runs (stddev / mean); over 0.1 the trial is flagged noisy"},
    {"bench", "time/repeat_ms", "ms", L, "%.3f", kCurve, "", "every timed run (step = repeat index); with `[sweep] rounds`, every round's, pooled: the statistics above are over all of them"},
    {"bench", "time/rounds", "count", N, "%.0f", kFinal, "", "rounds pooled, when `[sweep] rounds` > 1"},
    {"bench", "time/select_ms", "ms", L, "%.3f", kFinal, "", "median time of the backend's selection (its `select_ms` statistic: building the block list) per timed pass, included in the times above"},
    {"bench", "memory/peak_tensor_mib", "MiB", L, "%.1f", kFinal, "peak_mib", "peak bytes of live tensors during the pass, above the inputs (tracking CPU allocator; CUDA: caching allocator peak)"},
    {"bench", "memory/peak_rss_mib", "MiB", L, "%.1f", kFinal, "", "process peak RSS over the timed runs (includes BLAS buffers)"},
    {"bench", "memory/inputs_mib", "MiB", N, "%.1f", kFinal, "", "bytes of q, k and v"},
    {"bench", "flops/useful", "FLOP", N, "%.4g", kFinal, "", "4·D per allowed (query, key) pair of the executed layouts, ×3.5 for fwd+bwd (FlashAttention's convention): what any implementation of the mask must compute"},
    {"bench", "flops/tiles", "FLOP", N, "%.4g", kFinal, "", "the same over every element of the non-empty tiles (partial tiles counted whole)"},
    {"bench", "flops/computed", "FLOP", N, "%.4g", kFinal, "", "the backend's own cost(): masked T×T math computes all T², whatever its mask"},
    {"bench", "flops/gflops", "GFLOP/s", H, "%.2f", kFinal, "gflops", "flops/useful per second at the median time"},
    {"bench", "flops/tile_gflops", "GFLOP/s", H, "%.2f", kFinal, "", "flops/tiles per second at the median time"},
    {"bench", "flops/computed_gflops", "GFLOP/s", H, "%.2f", kFinal, "", "flops/computed per second at the median time"},
    {"bench", "ceiling/sgemm_gflops", "GFLOP/s", H, "%.2f", kFinal, "", "the fp32 matmul ceiling measured in the same run (absent when not measured)"},
    {"bench", "flops/fraction_of_sgemm", "fraction", H, "%.3f", kFinal, "", "flops/gflops over ceiling/sgemm_gflops: only allowed elements count, a partial (diagonal) tile is not credited with its masked work"},
    {"bench", "density/element", "fraction", L, "%.3f", kFinal, "density", "fraction of the T×T scores the backend's layouts allow (mean over its layouts)"},
    {"bench", "density/block", "fraction", L, "%.3f", kFinal, "block_density", "fraction of non-empty tiles of the backend's layouts, each at its own tile size"},
    {"bench", "density/tile", "tokens", N, "%.0f", kFinal, "", "the tile size (side of a tile, in tokens) of the backend's first layout: a size, not a density"},
    // every kind (engine/trial_job.cpp)
    {"*", "trial/wall_s", "s", L, "%.2f", kFinal, "", "the whole trial in its child process, setup included"},
    // kind = "distill" (model/distill.cpp, model/teacher.cpp)
    {"distill", "train/loss", "nats", L, "%.4f", kCurve, "", "the loss α_ce·CE + α_kl·τ²·KL + λ·reg (step = optimizer step, every logged one)"},
    {"distill", "train/ce", "nats/token", L, "%.4f", kCurve, "", "cross-entropy of the student on the training batch"},
    {"distill", "train/kl", "nats/token", L, "%.4f", kCurve, "", "KL(teacher‖student at temperature τ) on the training batch"},
    {"distill", "train/reg", "", L, "%.4g", kCurve, "", "the backends' regularizer (e.g. L1 on blend weights)"},
    {"distill", "train/lr", "", N, "%.3g", kCurve, "", "learning rate at the step (0 when nothing trains)"},
    {"distill", "stat/L<layer>/<name>", "", N, "%.4g", kCurve, "", "a backend statistic of layer <layer>: blend weights per head (`weight/h3/window:64`), gate usage (`gate/<candidate>`), selected density, temperature"},
    {"distill", "teacher/train_loss", "nats/token", L, "%.4f", kCurve, "", "only in the trial that trained the teacher (later trials load it from the cache)"},
    {"distill", "teacher/train_recall_acc", "fraction", H, "%.3f", kCurve, "", "the teacher's recall accuracy on the training batch's records (with `[data] recall_pairs` > 0)"},
    {"distill", "teacher/train_seconds", "s", L, "%.1f", kFinal, "", "wall time the trained teacher took to train (from its cache's config.json: the same in every trial that loads it)"},
    {"distill", "teacher/steps_to_recall", "steps", L, "%.0f", kFinal, "", "first training step whose moving recall accuracy (weight 0.1 per step) reached 0.95; -1: never (with `[data] recall_pairs` > 0)"},
    {"distill", "teacher/gate_T", "tokens", N, "%.0f", kFinal, "", "the length the teacher gates are checked at (the teacher's training length)"},
    {"distill", "teacher/gate_recall_acc", "fraction", H, "%.3f", kFinal, "", "the teacher's held-out recall at gate_T (gate: >= 0.95)"},
    {"distill", "teacher/gate_recall_acc_2x", "fraction", H, "%.3f", kFinal, "", "the teacher's held-out recall at 2 × gate_T (reported, not gated)"},
    {"distill", "teacher/gate_bpb", "bits/byte", L, "%.3f", kFinal, "", "the teacher's bits per byte on plain held-out windows (gate: <= 2.6)"},
    {"distill", "teacher/gate_window_recall_acc_2x", "fraction", L, "%.3f", kFinal, "", "recall of a 0-step `window:128` copy of the teacher at 2 × gate_T (gate: <= chance + 0.10)"},
    {"distill", "teacher/gate_recall_chance", "fraction", N, "%.4f", kFinal, "", "recall by guessing: 1 / recall_values"},
    {"distill", "teacher/gate_passed", "0/1", H, "%.0f", kFinal, "", "1 when every teacher gate held"},
    {"distill", "search/L<layer>/h<head>/<candidate>", "nats/token", L, "%.4f", kFinal, "", "the per-head search (blend selection = \"search\"): the distillation KL added by running head <head> of layer <layer> alone on <candidate>, every other searched head causal, on the calibration batches"},
    {"distill", "search/mean_cost", "fraction", L, "%.3f", kFinal, "", "the search's chosen masks' mean block cost over the searched heads, relative to causal"},
    {"distill", "search/seconds", "s", L, "%.1f", kFinal, "", "wall time of the search's measurements"},
    {"distill", "train/trainable_params", "count", N, "%.0f", kFinal, "", "parameters the optimizer trains"},
    {"distill", "eval/T<T>/teacher_ppl", "perplexity", L, "%.3f", kFinal, "teacher_ppl", "the teacher's perplexity on the held-out windows of length T"},
    {"distill", "eval/T<T>/teacher_bpb", "bits/byte", L, "%.3f", kFinal, "teacher_bpb", "the teacher's bits per byte of the held-out text"},
    {"distill", "eval/T<T>/teacher_tokens_per_s", "tokens/s", H, "%.1f", kFinal, "teacher_tokens_per_s", "the faster of the two teacher timings below (the speedups' reference)"},
    {"distill", "eval/T<T>/teacher_tokens_per_s_lo", "tokens/s", H, "%.1f", kFinal, "", "the slowest timed batch of that teacher (spread, not a confidence bound)"},
    {"distill", "eval/T<T>/teacher_tokens_per_s_hi", "tokens/s", H, "%.1f", kFinal, "", "the fastest timed batch of that teacher"},
    {"distill", "eval/T<T>/teacher_attention_ms", "ms", L, "%.3f", kFinal, "teacher_attention_ms", "milliseconds in attention per forward of that faster teacher"},
    {"distill", "eval/T<T>/windows", "count", N, "%.0f", kFinal, "windows", "held-out windows evaluated"},
    {"distill", "eval/T<T>/teacher_recall_acc", "fraction", H, "%.3f", kInterval, "teacher_recall_acc", "the teacher's recall accuracy at the query positions of the held-out records (with `[data] recall_pairs` > 0)"},
    {"distill", "eval/T<T>/recall_chance", "fraction", N, "%.4f", kFinal, "recall_chance", "recall by guessing: 1 / recall_values"},
    {"distill", "eval/T<T>/timing_batches", "count", N, "%.0f", kFinal, "", "batches timed per model, interleaved teacher, teacher, student... (`[eval] timing_batches`)"},
    {"distill", "eval/T<T>/soft_hard_gap", "nats/token", L, "%.4f", kFinal, "", "KL(teacher‖hard student) − KL(teacher‖soft student): 0 where hard mode computes what soft mode does"},
    {"distill", "eval/T<T>/tokens", "count", N, "%.0f", kFinal, "", "tokens evaluated"},
    {"distill", "eval/T<T>/teacher_sdpa_tokens_per_s", "tokens/s", H, "%.1f", kFinal, "", "the dense teacher's forward throughput with LibTorch's attention"},
    {"distill", "eval/T<T>/teacher_kernel_tokens_per_s", "tokens/s", H, "%.1f", kFinal, "", "the dense teacher's forward throughput on the causal block-sparse kernel"},
    {"distill", "eval/T<T>/student_ppl", "perplexity", L, "%.3f", kDeployed, "student_ppl", "the student's perplexity"},
    {"distill", "eval/T<T>/student_bpb", "bits/byte", L, "%.3f", kDeployed, "student_bpb", "the student's bits per byte"},
    {"distill", "eval/T<T>/delta_ppl", "perplexity", L, "%+.3f", kDeployed | kInterval, "delta_ppl", "student ppl − teacher ppl"},
    {"distill", "eval/T<T>/rel_delta_ppl", "fraction", L, "%+.4f", kDeployed | kInterval, "rel_delta_ppl", "student ppl / teacher ppl − 1"},
    {"distill", "eval/T<T>/kl", "nats/token", L, "%.4f", kDeployed | kInterval, "kl", "KL(teacher‖student) per token"},
    {"distill", "eval/T<T>/agreement", "fraction", H, "%.3f", kDeployed | kInterval, "agreement", "positions where the teacher's and the student's top-1 tokens agree"},
    {"distill", "eval/T<T>/density", "fraction", L, "%.3f", kDeployed, "density", "mean over layers of the backend's computed element fraction at T"},
    {"distill", "eval/T<T>/block_density", "fraction", L, "%.3f", kDeployed, "block_density", "mean over layers of the backend's non-empty tile fraction at T, each backend at its own layouts' tile"},
    {"distill", "eval/T<T>/causal_fraction", "fraction", L, "%.3f", kDeployed, "causal_fraction", "block density as a fraction of the causal layout's at the same tile (1 = every causal tile computed)"},
    {"distill", "eval/T<T>/tokens_per_s", "tokens/s", H, "%.1f", kDeployed, "tokens_per_s", "the student's forward throughput (median over the timing batches)"},
    {"distill", "eval/T<T>/tokens_per_s_lo", "tokens/s", H, "%.1f", kDeployed, "", "the student's slowest timed batch (spread, not a confidence bound)"},
    {"distill", "eval/T<T>/tokens_per_s_hi", "tokens/s", H, "%.1f", kDeployed, "", "the student's fastest timed batch"},
    {"distill", "eval/T<T>/select_ms", "ms", L, "%.3f", kDeployed, "", "the student's selection time per forward, all layers (median over the timed batches; included in tokens_per_s)"},
    {"distill", "eval/T<T>/attention_ms", "ms", L, "%.3f", kDeployed, "attention_ms", "milliseconds in the student's attention per forward"},
    {"distill", "eval/T<T>/speedup", "ratio", H, "%.2fx", kDeployed, "speedup", "student tokens/s over teacher_tokens_per_s (end to end, same process)"},
    {"distill", "eval/T<T>/speedup_lo", "ratio", H, "%.2fx", kDeployed, "", "the lowest per-batch speedup, each batch timed back to back with the teacher"},
    {"distill", "eval/T<T>/speedup_hi", "ratio", H, "%.2fx", kDeployed, "", "the highest per-batch speedup"},
    {"distill", "eval/T<T>/attention_speedup", "ratio", H, "%.2fx", kDeployed, "attention_speedup", "teacher_attention_ms over the student's attention_ms"},
    {"distill", "eval/T<T>/peak_mib", "MiB", L, "%.1f", kDeployed, "peak_mib", "the student forward's peak tensor memory above the weights"},
    {"distill", "eval/T<T>/recall_acc", "fraction", H, "%.3f", kDeployed | kInterval, "recall_acc", "the student's exact value prediction at the held-out records' query positions, every query at distance >= T/2"},
    {"distill", "eval/T<T>/recall_acc_d<bin>", "fraction", H, "%.3f", kDeployed | kInterval, "", "the same for queries at distance >= <bin> in four bins from T/2 (T/2, 5T/8, 6T/8, 7T/8)"},
    {"distill", "eval/T<T>/window_nll", "nats/token", L, "%.4f", kDeployed | kCurve, "", "the student's NLL per token of each window (step = window index): the samples `attnlab compare --against` tests"},
    {"distill", "eval/T<T>/window_kl", "nats/token", L, "%.4f", kDeployed | kCurve, "", "KL per token of each window (step = window index)"},
    {"distill", "train/ms_per_step", "ms", L, "%.1f", kFinal, "ms_per_step", "median optimizer step (absent for a backend with nothing to train: the dense control is evaluated only)"},
};

// Does `name` match `pattern`? A placeholder matches one non-empty path segment ("<T>": digits
// only); the pattern's last placeholder, ending it, matches the rest (it may hold '/').
bool matches(const std::string& pattern, const std::string& name) {
  std::size_t p = 0, n = 0;
  while (p < pattern.size()) {
    if (pattern[p] != '<') {
      if (n >= name.size() || name[n] != pattern[p]) return false;
      ++p, ++n;
      continue;
    }
    const std::size_t close = pattern.find('>', p);
    const bool digits = pattern.compare(p, close - p + 1, "<T>") == 0;
    const bool last = close + 1 == pattern.size();
    std::size_t end = n;
    while (end < name.size() && (last || name[end] != '/') && (!digits || (name[end] >= '0' && name[end] <= '9')))
      ++end;
    if (end == n) return false;
    p = close + 1;
    n = end;
  }
  return n == name.size();
}

// The patterns a declaration answers for: itself, its hard_ twin, their _lo/_hi bounds.
std::vector<std::string> variants(const Metric& m) {
  std::vector<std::string> out = {m.pattern};
  if (m.has(kDeployed)) {
    const std::string p = m.pattern;
    const auto slash = p.rfind('/');
    out.push_back(p.substr(0, slash + 1) + kHardPrefix + p.substr(slash + 1));
  }
  if (m.has(kInterval))
    for (std::size_t i = 0, n = out.size(); i < n; ++i) {
      out.push_back(out[i] + "_lo");
      out.push_back(out[i] + "_hi");
    }
  return out;
}

}  // namespace

const char* const kHardPrefix = "hard_";
const char* const kSeedParam = "seed";

std::string Metric::eval_field() const {
  const std::string p = pattern;
  const std::string prefix = "eval/T<T>/";
  return p.rfind(prefix, 0) == 0 ? p.substr(prefix.size()) : "";
}

const std::vector<Metric>& all() { return kMetricList; }

const Metric* find(const std::string& name) {
  for (const auto& m : kMetricList)
    for (const auto& pattern : variants(m))
      if (matches(pattern, name)) return &m;
  return nullptr;
}

const Metric* by_column(const std::string& kind, const std::string& column) {
  for (const auto& m : kMetricList)
    if (kind == m.kind && column == m.column) return &m;
  return nullptr;
}

std::string eval_name(std::int64_t T, const std::string& field) { return "eval/T" + std::to_string(T) + "/" + field; }

std::string hard(const std::string& field) { return kHardPrefix + field; }

std::optional<double> deployed(const std::function<std::optional<double>(const std::string&)>& final_metric,
                               std::int64_t T, const std::string& field) {
  if (auto hard_value = final_metric(eval_name(T, hard(field)))) return hard_value;
  return final_metric(eval_name(T, field));
}

std::string deployed_sql(const std::string& field) {
  return "COALESCE(MAX(CASE WHEN ev.field = '" + hard(field) + "' THEN ev.value END), MAX(CASE WHEN ev.field = '" +
         field + "' THEN ev.value END))";
}

std::string method_key(const std::map<std::string, std::string>& params) {
  std::string key;
  for (const auto& [name, value] : params)  // std::map: sorted by name, as method_sql's ORDER BY
    if (name != kSeedParam) key += (key.empty() ? "" : ";") + name + "=" + value;
  return key;
}

std::string method_sql(const std::string& trial_id) {
  return std::string("(SELECT group_concat(name || '=' || value, ';') FROM (SELECT name, value FROM params p ") +
         "WHERE p.trial_id = " + trial_id + " AND p.name <> '" + kSeedParam + "' ORDER BY name))";
}

std::string format(const std::string& name, double value) {
  const Metric* m = find(name);
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, m ? m->format : "%.6g", value);
  return buffer;
}

}  // namespace attnlab::metrics
