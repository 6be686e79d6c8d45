#include "trials/bench/measure.hpp"

#include <attnlab/kernels/attention.hpp>

#include "base/memory.hpp"

#include <attnlab/attend.hpp>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/generated/variable_factories.h>
#include <torch/utils.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <vector>

namespace attnlab {
namespace {

double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.size() == 1) return sorted[0];
  const double rank = p * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(rank)), hi = static_cast<size_t>(std::ceil(rank));
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - static_cast<double>(lo));
}

// A blocking device->host copy waits for the stream (and keeps this file CUDA-header free);
// one element, so the copy itself does not land in the timed pass.
void synchronize(const at::Tensor& t) {
  if (t.is_cuda() && t.numel() > 0) t.reshape({-1}).narrow(0, 0, 1).cpu();
}

// One pass of the backend over seeded inputs q, k, v ~ N(0, 1) [B, H, T, D] (and dout for
// fwd+bwd), on the trial's device and dtype, in the trial's mode.
class Pass {
 public:
  Pass(AttentionBackend& backend, const BenchOptions& o) : backend_(backend), o_(o), backward_(o.pass == "fwd+bwd") {
    const auto dtype = o.dtype == "float64" ? at::kDouble : at::kFloat;
    const auto options = at::TensorOptions().dtype(dtype).device(at::Device(o.device));
    backend.to(options.device(), dtype);
    backend.set_hard(o.mode == "hard");  // [grid] mode: hard = what a deployed student runs
    at::manual_seed(static_cast<std::uint64_t>(o.seed));
    const std::vector<std::int64_t> shape{o.batch, o.heads, o.seq_len, o.head_dim};
    q_ = torch::randn(shape, options).requires_grad_(backward_);
    k_ = torch::randn(shape, options).requires_grad_(backward_);
    v_ = torch::randn(shape, options).requires_grad_(backward_);
    if (backward_) dout_ = torch::randn(shape, options);
  }

  // The previous pass's gradients are freed before a pass is measured, not inside it: freed
  // inside, the new gradients would land in bytes already counted as live before the pass.
  void drop_gradients() {
    for (auto* t : {&q_, &k_, &v_})
      if (t->grad().defined()) t->mutable_grad() = at::Tensor();
    backend_.zero_grad(/*set_to_none=*/true);
  }

  void run() {
    if (backward_) {
      auto out = attend(backend_, q_, k_, v_, o_.heads);
      out.backward(dout_);
      synchronize(q_.grad());
    } else {
      torch::NoGradGuard no_grad;
      synchronize(attend(backend_, q_, k_, v_, o_.heads));
    }
  }

  bool backward() const { return backward_; }
  double input_bytes() const {
    return 3.0 * static_cast<double>(q_.numel()) * static_cast<double>(q_.element_size());
  }

 private:
  AttentionBackend& backend_;
  const BenchOptions& o_;
  const bool backward_;
  at::Tensor q_, k_, v_, dout_;
};

struct Timed {
  std::vector<double> ms, select_ms;  // per timed pass
  std::int64_t peak_tensor = 0;       // bytes above what was live before the pass, the largest
  double kernel_tiles = 0.0;          // tiles the CPU kernel computed per pass (0: not on it)
};

// `repeats` timed passes, and more while they add up to less than min_time_s.
Timed time_passes(AttentionBackend& backend, Pass& pass, const BenchOptions& o, TrialSink& sink) {
  Timed timed;
  kernels::reset_forward_tiles_computed();  // what the timed passes ran on the CPU kernel
  memory::reset_peak_rss();
  const bool cuda = o.device == "cuda";
  double timed_ms = 0.0;
  for (std::int64_t i = 0; i < o.repeats || (timed_ms < 1e3 * o.min_time_s && i < kMaxRepeats); ++i) {
    // Peaks are measured above what is live before the pass (inputs, weights), on either device.
    pass.drop_gradients();
    const std::int64_t live_before = cuda ? memory::cuda_current_bytes() : memory::cpu_current_bytes();
    memory::reset_cpu_peak();
    if (cuda) memory::reset_cuda_peak();
    const auto t0 = std::chrono::steady_clock::now();
    pass.run();
    timed.ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    timed_ms += timed.ms.back();
    // A backend that selects what it computes reports the selection's share of the pass as the
    // statistic "select_ms" (its last forward's; see backend.hpp).
    for (const auto& stat : backend.statistics())
      if (stat.name == "select_ms") timed.select_ms.push_back(stat.value);
    const std::int64_t peak = (cuda ? memory::cuda_peak_bytes() : memory::cpu_peak_bytes()) - live_before;
    timed.peak_tensor = std::max(timed.peak_tensor, peak);
    sink.progress(i + 1, std::max(o.repeats, i + 1), "repeat");
  }
  timed.kernel_tiles = static_cast<double>(kernels::forward_tiles_computed()) / static_cast<double>(timed.ms.size());
  return timed;
}

// The time/ statistics over this round's passes pooled with the earlier rounds'; returns the
// median.
double record_times(const Timed& timed, const BenchOptions& o, TrialSink& sink) {
  // Earlier rounds' repeats first (time/repeat_ms keeps them in the order they were taken).
  std::vector<double> ms = o.prior_repeats_ms;
  ms.insert(ms.end(), timed.ms.begin(), timed.ms.end());
  if (o.round > 1) sink.metric("time/rounds", static_cast<double>(o.round));
  std::vector<double> sorted = ms;
  std::sort(sorted.begin(), sorted.end());
  const double mean = std::accumulate(ms.begin(), ms.end(), 0.0) / static_cast<double>(ms.size());
  double var = 0.0;
  for (double x : ms) var += (x - mean) * (x - mean);
  const double stddev = ms.size() > 1 ? std::sqrt(var / static_cast<double>(ms.size() - 1)) : 0.0;
  const double median = percentile(sorted, 0.5);
  sink.metric("time/median_ms", median);
  sink.metric("time/min_ms", sorted.front());
  sink.metric("time/max_ms", sorted.back());
  sink.metric("time/p10_ms", percentile(sorted, 0.1));
  sink.metric("time/p90_ms", percentile(sorted, 0.9));
  sink.metric("time/mean_ms", mean);
  sink.metric("time/cv", mean > 0 ? stddev / mean : 0.0);
  if (!timed.select_ms.empty()) {  // this round's passes only
    std::vector<double> select = timed.select_ms;
    std::sort(select.begin(), select.end());
    sink.metric("time/select_ms", percentile(select, 0.5));
  }
  for (size_t i = 0; i < ms.size(); ++i) sink.metric("time/repeat_ms", ms[i], static_cast<std::int64_t>(i));
  return median;
}

void record_memory(const Timed& timed, const Pass& pass, TrialSink& sink) {
  sink.metric("memory/peak_tensor_mib", static_cast<double>(timed.peak_tensor) / (1024.0 * 1024.0));
  sink.metric("memory/peak_rss_mib", static_cast<double>(memory::peak_rss_bytes()) / (1024.0 * 1024.0));
  sink.metric("memory/inputs_mib", pass.input_bytes() / (1024.0 * 1024.0));
}

// The work counted: useful = the allowed elements of the layouts the backend executed (what
// any implementation of its mask must compute), tiles = every element of their non-empty tiles
// (an upper bound: partial tiles counted whole), computed = the backend's own cost() (masked
// T x T math computes all T^2, whatever its mask).
void record_work(AttentionBackend& backend, const BenchOptions& o, bool backward, double kernel_tiles, double median,
                 TrialSink& sink) {
  const auto layouts = backend.layouts(o.seq_len);
  const AttentionShape call{o.batch, o.heads, o.seq_len, o.head_dim};
  Density density = executed_density(backend, call);  // masked T x T math: dense
  if (kernel_tiles > 0 && !layouts.empty()) {  // the kernel's own count: a mixture's every pass
    const double n = static_cast<double>(layouts.front()->n_q_tiles() * layouts.front()->n_k_tiles());
    density.block = kernel_tiles / (static_cast<double>(o.batch * o.heads) * n);
  }
  auto total = [&](const Cost& c) { return backward ? c.forward_flops + c.backward_flops : c.forward_flops; };
  const double useful = total(mask_cost(layouts, call));
  const double computed = total(backend.cost(call));
  const std::int64_t tile = layouts.empty() ? 0 : layouts.front()->tile;
  double tile_elements = 0.0;
  for (const auto& l : layouts) tile_elements += static_cast<double>(l->nnz() * l->tile * l->tile);
  tile_elements *= static_cast<double>(o.batch * o.heads) / static_cast<double>(std::max<std::size_t>(1, layouts.size()));
  const double tile_work = total(Cost{4.0 * static_cast<double>(o.head_dim) * tile_elements,
                                      10.0 * static_cast<double>(o.head_dim) * tile_elements});
  const double seconds = median / 1e3;
  sink.metric("density/element", density.element);
  sink.metric("density/block", density.block);
  sink.metric("density/tile", static_cast<double>(tile));
  sink.metric("flops/useful", useful);
  sink.metric("flops/tiles", tile_work);
  sink.metric("flops/computed", computed);
  sink.metric("flops/gflops", useful / seconds / 1e9);
  sink.metric("flops/tile_gflops", tile_work / seconds / 1e9);
  sink.metric("flops/computed_gflops", computed / seconds / 1e9);
  if (o.sgemm_gflops > 0) {
    sink.metric("ceiling/sgemm_gflops", o.sgemm_gflops);
    // Against the ceiling only the allowed elements count: a partial (diagonal) tile is not
    // credited with the work its masked elements would have been.
    sink.metric("flops/fraction_of_sgemm", useful / seconds / 1e9 / o.sgemm_gflops);
  }
}

}  // namespace

void run_bench(AttentionBackend& backend, const BenchOptions& o, TrialSink& sink) {
  memory::install_cpu_tracker();
  Pass pass(backend, o);
  for (std::int64_t i = 0; i < o.warmup; ++i) {
    pass.drop_gradients();
    pass.run();
  }
  const Timed timed = time_passes(backend, pass, o, sink);
  const double median = record_times(timed, o, sink);
  record_memory(timed, pass, sink);
  record_work(backend, o, pass.backward(), timed.kernel_tiles, median, sink);
}

}  // namespace attnlab
