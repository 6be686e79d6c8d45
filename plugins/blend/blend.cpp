// blend: a learned weighting of K candidate masks per head, in two formulations.
//
//   M_k    = masks::dense(candidate_k, T)                     bool [K, T, T], causal
//   U      = OR_k M_k                                         support; outside it keys are -inf exactly
//
// mixing = "unnormalized" (default; the seed notebook's formulation):
//   w[h,k] = activation(logit[h,k]) >= 0                      [H, K] (per = head), [1, K] (per = layer)
//   M[h]   = clamp(sum_k w[h,k] M_k, 0, 1)                    soft mask [H, T, T]
//   out[b,h,t] = sum_{s: U[t,s]} softmax_s(q[b,h,t]·k[b,h,s] / sqrt(D) + log(M[h,t,s] + eps)) v[b,h,s]
//   regularizer = "l1"          mean_h sum_k w[h,k]
//               = "compute_l1"  mean_h sum_k density_k · w[h,k]   (element density at max_seq_len)
//   Why it cannot sparsify: the softmax sees only the weights' ratios (log(c·w) = log c + log w
//   cancels), so L1 shrinks every weight together at no cost in KL, and a hard cut relative to
//   the head's largest weight ("relative", the default) then keeps what it kept at the start;
//   an absolute cut drops every candidate at once. Measured: hard block density stays at the
//   causal layout's whatever lambda (docs/BENCHMARKS.md, the study).
//
// mixing = "normalized" (what the study trains):
//   w[h,:] = softmax(logit[h,:])                              on the simplex: sum_k w[h,k] = 1
//   P[b,h,t,:] = sum_k w[h,k] softmax over M_k of the scores, i.e. out = sum_k w[h,k] out_k
//                (soft = "mixture": one kernel pass per candidate; soft = "masked": K masked
//                softmaxes of one T x T score matrix)
//   Changed in blend 3.0: before it, both soft forms weighted candidate k by w_k·Z_k (Z_k =
//   e^{lse_k}, its softmax normaliser), i.e. softmax(scores + log sum_k w_k M_k): nested
//   candidates leaned on the larger mask beyond its weight. Trials from 2.x measured that.
//   regularizer = "expected_cost"  mean_h sum_k w[h,k] · cost_k(T),
//                 cost_k(T) = block density of M_k / block density of causal, at the forward's T
//   Not scale-invariant: weight moved to a cheap candidate lowers the penalty, so lambda trades
//   KL for compute, from the causal layout at lambda = 0 towards the cheapest candidate.
//
// selection = "st_gumbel" (normalized only): trains the way it is deployed, one mask per head.
//   training forward: c[h] = argmax_k (logit[h,k] + G[h,k]),  G ~ Gumbel(0, 1) seeded by
//     (trial seed, layer, step): the same draw for every forward of one step
//   y[h,:] = softmax((logit[h,:] + G[h,:]) / tau),  tau annealed linearly tau -> tau_final by on_step
//   out[b,h] = (1 - sg(y[h,c]) + y[h,c]) · attention over M_{c[h]}   (value: the hard choice;
//     gradient: straight through the relaxed weight, GDAS-style: one pass, the chosen mask)
//   eval (not training) forward and hard mode: c[h] = argmax_k logit[h,k], no noise
//   regularizer "expected_cost" stays sum_k w_k cost_k: the expected cost of the sampled choice
// selection = "search": the baseline learning must match (DuoAttention / MoA-style), chosen by
//   the host (attnlab/head_search.hpp, model/head_search.hpp): before training, a distill trial
//   measures the model's output ΔKL to the teacher of switching each (layer, head) alone to each
//   candidate, on `search_batches` calibration batches, and assigns candidates greedily so that
//   the mean cost over every searched head of the model is <= `budget` (cost = block density /
//   causal's). Each head then runs its chosen mask; the logits are unused (no regularizer
//   term). Until the host chooses (a bench trial, a bare forward) every head runs causal.
// selection = "random": the search's control, a random per-head assignment at the same budget:
//   the same solver over seeded uniform scores (the trial's seed), nothing measured.
// hard_after_step = n >= 0: from step n on, training runs the hard (deployed) masks: a hard
//   fine-tune phase (logits get no gradient there; with train = "all" the model adapts)
// init_noise: std of a seeded N(0, 1) added to every initial logit (seed and layer), so that
//   seeds start from different weights and break ties between equal candidates
//
// q [B, H, T, D], k [B, H, S, D], v [B, H, S, D] -> out [B, H, T, D]   (S == T)
// With the single candidate "causal", blend equals dense for any weight.
//
// hard mode: candidates with w[h,k] < threshold · max_j w[h,j] ("relative", the default) or
// w[h,k] < threshold ("absolute") drop out, or every candidate but the head's largest
// ("argmax"); the union of the survivors of each head runs as a fixed mask (no weights):
// masked math, or the block-sparse kernel with one layout per head.
// soft = "mixture" never materializes T x T; for "unnormalized" it equals "masked" wherever
// sum_k w[h,k] M_k <= 1 (eps -> 0):
//   (out_k, lse_k) = block_sparse_attention_lse(q, k, v, layout(M_k))
//   unnormalized: out = sum_k w[h,k] e^{lse_k} out_k / sum_k w[h,k] e^{lse_k}
//   normalized:   out = sum_k w[h,k] out_k
#include <attnlab/head_search.hpp>
#include <attnlab/kernels/attention.hpp>
#include <attnlab/masks.hpp>
#include <attnlab/plugin.hpp>
#include <attnlab/random.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>

namespace {

std::string join(const std::vector<std::string>& parts, const char* sep) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
  return out;
}

class BlendAttention : public attnlab::AttentionBackend, public attnlab::HeadSearchable {
 public:
  explicit BlendAttention(const attnlab::BackendInit& init)
      : AttentionBackend("BlendAttention"),
        candidates_(attnlab::masks::parse_list_param("candidates", init.params.get_string("candidates"))),
        activation_(init.params.get_string("activation")),
        normalized_(init.params.get_string("mixing") == "normalized"),
        regularizer_kind_(init.params.get_string("regularizer")),
        threshold_(init.params.get_float("threshold")),
        threshold_mode_(init.params.get_string("threshold_mode")),
        eps_(init.params.get_float("eps")),
        execution_(init.params.get_string("execution")),
        mixture_(init.params.get_string("soft") == "mixture"),
        tile_(init.params.get_int("tile")),
        n_heads_(init.n_heads),
        max_seq_len_(init.max_seq_len),
        st_gumbel_(init.params.get_string("selection") == "st_gumbel"),
        tau_start_(init.params.get_float("tau")),
        tau_final_(init.params.get_float("tau_final")),
        tau_(tau_start_),
        hard_after_step_(init.params.get_int("hard_after_step")),
        noise_seed_(init.seed * 1000003u + 7919u * static_cast<std::uint64_t>(init.layer_index) + 17u),
        search_(init.params.get_string("selection") == "search" || init.params.get_string("selection") == "random"),
        random_search_(init.params.get_string("selection") == "random"),
        budget_(init.params.get_float("budget")),
        search_batches_(init.params.get_int("search_batches")) {
    const std::int64_t rows = init.params.get_string("per") == "head" ? init.n_heads : 1;
    const double w0 = init.params.get_float("init");
    // Every weight starts at `init` (unnormalized: inverse of the activation); normalized
    // weights start uniform, except that `init_causal` > 0 gives "causal" (when a candidate)
    // that share of the mass.
    double logit = activation_ == "sigmoid" ? std::log(std::min(w0, 1.0 - 1e-4) / (1.0 - std::min(w0, 1.0 - 1e-4)))
                                            : std::log(std::expm1(w0));
    auto initial = torch::full({rows, static_cast<std::int64_t>(candidates_.size())}, normalized_ ? 0.0 : logit);
    const double causal_share = init.params.get_float("init_causal");
    const auto causal = std::find(candidates_.begin(), candidates_.end(), "causal");
    if (normalized_ && causal_share > 0 && causal != candidates_.end() && candidates_.size() > 1) {
      const double others = (1.0 - causal_share) / static_cast<double>(candidates_.size() - 1);
      initial.select(1, causal - candidates_.begin()).fill_(std::log(causal_share / others));
    }
    // Seeded, per layer: seeds then start from different weights (and pick among equals).
    const double noise = init.params.get_float("init_noise");
    if (noise > 0) initial += noise * at::randn(initial.sizes(), attnlab::seeded_generator(noise_seed_), initial.options());
    // The search's choice comes from the host's measurements, not from gradients: its logits
    // stay out of training (with train = "backend" a search student has nothing to train).
    logits_ = register_parameter("logits", initial, /*requires_grad=*/!search_);
    for (const auto& c : candidates_) densities_.push_back(attnlab::masks::density(c, max_seq_len_, tile_).element);
  }

  static std::vector<attnlab::ParamSpec> schema() {
    using attnlab::ParamSpec;
    return {ParamSpec::text("candidates", "causal,window:64,stride:64,sink:4|window:16",
                            "comma-separated candidate mask expressions (grammar of the masks backend)"),
            ParamSpec::choice("per", "head", {"head", "layer"}, "one weight vector per head, or one shared by the layer"),
            ParamSpec::choice("mixing", "unnormalized", {"unnormalized", "normalized"},
                              "unnormalized: w = activation(logits) >= 0 (the seed's); normalized: w = softmax(logits)"),
            ParamSpec::choice("activation", "sigmoid", {"sigmoid", "softplus"}, "unnormalized: w = activation(logits)"),
            ParamSpec::real("init", 0.5, 1e-4, 1.0, "unnormalized: initial weight of every candidate (sigmoid caps it at 1 - 1e-4)"),
            ParamSpec::real("init_causal", 0.0, 0.0, 0.999,
                            "normalized: initial weight of the causal candidate (0: uniform over candidates)"),
            ParamSpec::choice("regularizer", "l1", {"l1", "compute_l1", "expected_cost"},
                              "L1 on the weights, L1 scaled by each mask's element density, or (normalized) the "
                              "expected block cost relative to causal"),
            ParamSpec::real("threshold", 0.1, 0.0, 1.0, "hard mode keeps candidates with weight >= threshold (x the head's largest weight when relative)"),
            ParamSpec::choice("threshold_mode", "relative", {"relative", "absolute", "argmax"},
                              "hard mode keeps weights >= threshold x the head's largest, >= threshold, or only the largest"),
            ParamSpec::real("eps", 1e-6, 1e-12, 0.1, "log(M + eps) floor of the soft mask"),
            attnlab::param::execution({"reference", "block_sparse"}, "how hard mode runs the surviving union"),
            ParamSpec::choice("soft", "masked", {"masked", "mixture"},
                              "soft mode: masked T x T math, or one block-sparse pass per candidate, mixed"),
            ParamSpec::choice("selection", "soft", {"soft", "st_gumbel", "search", "random"},
                              "training forward: the soft mixture, one Gumbel-argmax mask per head with "
                              "straight-through gradients (normalized only), the host's greedy search by "
                              "measured ΔKL, or its control: a seeded random assignment under the same budget"),
            ParamSpec::real("budget", 0.5, 0.0, 1.0,
                            "search: mean over the model's searched heads of the chosen masks' block cost relative to causal"),
            ParamSpec::integer("search_batches", 4, 1, 100000, "search: calibration batches the distill trial measures ΔKL on"),
            ParamSpec::real("tau", 1.0, 1e-3, 100.0, "st_gumbel: relaxation temperature at step 0"),
            ParamSpec::real("tau_final", 0.1, 1e-3, 100.0, "st_gumbel: temperature reached at the last step (linear)"),
            ParamSpec::integer("hard_after_step", -1, -1, 1 << 30,
                               "from this step on, train with the hard (deployed) masks (-1: never)"),
            ParamSpec::real("init_noise", 0.01, 0.0, 10.0, "std of the seeded noise added to the initial logits"),
            attnlab::param::tile()};
  }

  // A malformed candidate list, or a regularizer that does not fit the mixing, is refused
  // while the sweep loads, not when its trial runs.
  static void validate(const attnlab::Params& params) {
    attnlab::masks::parse_list_param("candidates", params.get_string("candidates"));
    const bool normalized = params.get_string("mixing") == "normalized";
    const std::string reg = params.get_string("regularizer");
    if (normalized && reg != "expected_cost")
      throw attnlab::ParamError("regularizer", "parameter 'regularizer' = '" + reg +
                                                   "': normalized weights have constant L1 norm, so " + reg +
                                                   " cannot change them",
                                "use regularizer = \"expected_cost\" with mixing = \"normalized\"");
    if (!normalized && params.get_string("selection") == "st_gumbel")
      throw attnlab::ParamError("selection", "selection = 'st_gumbel' picks one candidate from softmax(logits): it needs mixing = 'normalized'",
                                "set mixing = \"normalized\" and regularizer = \"expected_cost\"");
    if (!normalized && reg == "expected_cost")
      throw attnlab::ParamError("regularizer", "parameter 'regularizer' = 'expected_cost' needs mixing = 'normalized'",
                                "set mixing = \"normalized\", or use l1 / compute_l1");
  }

  torch::Tensor weights() const {
    if (normalized_) return torch::softmax(logits_, 1);
    return activation_ == "sigmoid" ? torch::sigmoid(logits_) : torch::softplus(logits_);
  }

  torch::Tensor forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) override {
    const std::int64_t T = q.size(2);
    last_T_ = T;
    const double scale = attnlab::kernels::softmax_scale(q.size(-1));
    if (hard() || fine_tuning_) return forward_hard(q, k, v, T, scale);
    if (st_gumbel_) return forward_st_gumbel(q, k, v, scale);
    if (search_) return run_unions(q, k, v, surviving_unions(), scale);
    if (mixture_) return forward_mixture(q, k, v, T, scale);
    const auto candidate_masks = candidate_stack(T, q.options());  // [K, T, T]
    const auto support = attnlab::masks::dense(join(candidates_, "|"), T).to(q.device());  // [T, T]
    const auto w = weights().to(q.scalar_type());                                          // [H|1, K]
    if (normalized_) {  // sum_k w_k softmax_{M_k}(scores): one masked softmax per candidate
      const auto scores = torch::matmul(q, k.transpose(-2, -1)) * scale;
      torch::Tensor P;
      for (std::int64_t c = 0; c < candidate_masks.size(0); ++c) {
        const auto term = w.select(1, c).reshape({1, -1, 1, 1}) *
                          attnlab::kernels::masked_softmax(scores, candidate_masks[c].to(torch::kBool));
        P = P.defined() ? P + term : term;
      }
      return torch::matmul(P, v);
    }
    const auto soft = torch::tensordot(w, candidate_masks, {1}, {0}).clamp(0.0, 1.0);      // [H|1, T, T]
    auto scores = torch::matmul(q, k.transpose(-2, -1)) * scale + torch::log(soft + eps_).unsqueeze(0);
    return torch::matmul(attnlab::kernels::masked_softmax(scores, support), v);
  }

  void on_step(std::int64_t step, std::int64_t total_steps) override {
    // The trainer passes step = 0 .. total_steps - 1: the last step reaches tau_final.
    const double progress =
        total_steps > 1 ? std::clamp(static_cast<double>(step) / static_cast<double>(total_steps - 1), 0.0, 1.0) : 1.0;
    tau_ = tau_start_ + (tau_final_ - tau_start_) * progress;
    step_ = step;
    fine_tuning_ = hard_after_step_ >= 0 && step >= hard_after_step_;
  }

  torch::Tensor regularizer() override {
    if (search_) return {};  // the search does not use the weights
    auto w = weights();
    if (regularizer_kind_ == "expected_cost") {
      const auto cost = torch::tensor(costs(last_T_ > 0 ? last_T_ : max_seq_len_), torch::TensorOptions().dtype(torch::kDouble));
      return (w * cost.to(w.device(), w.scalar_type())).sum(1).mean();
    }
    if (regularizer_kind_ == "compute_l1")
      w = w * torch::tensor(densities_, torch::TensorOptions().dtype(torch::kDouble)).to(w.device(), w.scalar_type());
    return w.sum(1).mean();
  }

  std::vector<attnlab::Statistic> statistics() override {
    auto out = weight_statistics();
    if (st_gumbel_) out.push_back({"tau", tau_});
    if (search_ && !searched_.empty()) {
      const auto c = costs(last_T_ > 0 ? last_T_ : max_seq_len_);
      double mean = 0;
      for (const int k : searched_choice_)
        mean += (k == kCausal ? 1.0 : c[k]) / static_cast<double>(searched_choice_.size());
      out.push_back({"search/mean_cost", mean});
    }
    return out;
  }

  // The host's search (attnlab/head_search.hpp): what to measure, and the choice it makes.
  std::optional<attnlab::HeadSearch> head_search(std::int64_t T) const override {
    if (!search_) return std::nullopt;
    return attnlab::HeadSearch{candidates_, costs(T), budget_, search_batches_, random_search_};
  }

  void choose_heads(const std::vector<int>& choice) override {
    TORCH_CHECK(static_cast<std::int64_t>(choice.size()) == n_heads_, "blend: a choice for ", choice.size(),
                " heads, built for ", n_heads_);
    searched_choice_ = choice;
    searched_.clear();
    for (const int c : choice) {
      TORCH_CHECK(c == kCausal || (c >= 0 && c < static_cast<int>(candidates_.size())), "blend: no candidate ", c);
      searched_.push_back(c == kCausal ? "causal" : candidates_[static_cast<std::size_t>(c)]);
    }
  }

  // Each candidate's block density at T relative to the causal layout's: what keeping it costs
  // on the kernel, 1 for the full mask.
  std::vector<double> costs(std::int64_t T) const {
    std::vector<double> out;
    const double causal = attnlab::masks::density("causal", T, tile_).block;
    for (const auto& c : candidates_) out.push_back(attnlab::masks::density(c, T, tile_).block / causal);
    return out;
  }

  std::vector<attnlab::Statistic> weight_statistics() {
    std::vector<attnlab::Statistic> out;
    // The search deploys its choice, one-hot (its logits are unused); before it: nothing chosen.
    const auto w = search_ ? chosen_one_hot() : weights().detach().to(torch::kDouble).cpu().expand({n_heads_, -1}).contiguous();
    for (std::int64_t h = 0; h < n_heads_; ++h)
      for (std::size_t c = 0; c < candidates_.size(); ++c)
        out.push_back({"weight/h" + std::to_string(h) + "/" + candidates_[c], w[h][c].item<double>()});
    const auto d = attnlab::density_of(head_layouts(surviving_unions(), max_seq_len_));
    out.push_back({"density/hard_element", d.element});
    out.push_back({"density/hard_block", d.block});
    return out;
  }

  torch::Tensor chosen_one_hot() const {
    auto w = torch::zeros({n_heads_, static_cast<std::int64_t>(candidates_.size())}, torch::kDouble);
    for (std::size_t h = 0; h < searched_choice_.size(); ++h)
      if (searched_choice_[h] != kCausal) w[static_cast<std::int64_t>(h)][searched_choice_[h]] = 1.0;
    return w;
  }

  // Hard mode (and the fine-tune phase): each head's surviving union (one layout for all heads
  // when they agree); st_gumbel's training forward: the masks its last forward drew; soft
  // mode: the support every soft row may attend to, the union of all candidates.
  attnlab::kernels::LayoutSet layouts(std::int64_t T) const override {
    if (!runs_one_mask_per_head()) return {attnlab::masks::block_layout(join(candidates_, "|"), T, tile_)};
    const bool drawn = st_gumbel_ && !hard() && !fine_tuning_ && !last_unions_.empty();
    auto per_head = head_layouts(drawn ? last_unions_ : surviving_unions(), T);
    const bool shared = std::all_of(per_head.begin(), per_head.end(), [&](const auto& l) { return l == per_head[0]; });
    return shared ? attnlab::kernels::LayoutSet{per_head[0]} : per_head;
  }

  // Soft masked math and the reference execution compute every element of T x T; the mixture
  // runs one kernel pass per candidate over that candidate's tiles; one mask per head on the
  // kernel (hard, fine-tune, st_gumbel) those masks' tiles.
  attnlab::Cost cost(const attnlab::AttentionShape& shape) const override {
    if (!runs_one_mask_per_head() && mixture_) return attnlab::mixture_cost(candidates_, shape, tile_);
    if (!runs_one_mask_per_head() || execution_ == "reference") return attnlab::full_cost(shape);
    return attnlab::mask_cost(layouts(shape.seq_len), shape);
  }

 private:
  bool runs_one_mask_per_head() const { return hard() || fine_tuning_ || st_gumbel_ || search_; }

  // One Gumbel-argmax mask per head (see the header): noise drawn per step, the same for every
  // forward of that step (so a step's forwards agree, and a seed reproduces them); eval
  // forwards (not training) take the plain argmax, which is what hard mode deploys.
  torch::Tensor forward_st_gumbel(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, double scale) {
    const auto logits = logits_.to(q.scalar_type());  // [H|1, K]
    torch::Tensor choice, weight;                     // [H|1]
    if (is_training()) {
      auto generator = attnlab::seeded_generator(noise_seed_ + 2654435761u * static_cast<std::uint64_t>(step_ + 1));
      const auto u = at::rand(logits.sizes(), generator, torch::TensorOptions().dtype(torch::kDouble)).clamp(1e-12, 1.0 - 1e-12);
      const auto y = torch::softmax((logits - torch::log(-torch::log(u)).to(logits.options())) / tau_, 1);
      choice = y.argmax(1);
      const auto y_c = y.gather(1, choice.unsqueeze(1)).squeeze(1);
      weight = 1.0 - y_c.detach() + y_c;  // 1 in value, y_c's gradient
    } else {
      choice = logits.argmax(1);
      weight = torch::ones({logits.size(0)}, logits.options());
    }
    const auto chosen = choice.expand({n_heads_}).contiguous().cpu();
    last_unions_.clear();
    for (std::int64_t h = 0; h < n_heads_; ++h) last_unions_.push_back(candidates_[chosen[h].item<std::int64_t>()]);
    return run_unions(q, k, v, last_unions_, scale) * weight.expand({n_heads_}).reshape({1, -1, 1, 1});
  }

  // sum_k w_k e^{lse_k} out_k / sum_k w_k e^{lse_k}, computed as a softmax over k of
  // log w_k + lse_k (rows where no candidate has a key give 0).
  torch::Tensor forward_mixture(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                std::int64_t T, double scale) {
    std::vector<torch::Tensor> outs, lses;
    for (const auto& c : candidates_) {
      auto [out, lse] = attnlab::kernels::block_sparse_attention_lse(q, k, v, {attnlab::masks::block_layout(c, T, tile_)},
                                                                     scale);
      outs.push_back(out);
      lses.push_back(lse.to(q.scalar_type()));
    }
    const auto K = static_cast<std::int64_t>(candidates_.size());
    if (normalized_) {  // sum_k w_k out_k: each candidate's softmax, weighted by w alone
      const auto w = weights().to(q.scalar_type()).t().reshape({K, 1, -1, 1, 1});  // [K, 1, H|1, 1, 1]
      return (w * torch::stack(outs)).sum(0);
    }
    const auto log_w = torch::log(weights().to(q.scalar_type())).t().reshape({K, 1, -1, 1});  // [K, 1, H|1, 1]
    const auto a = torch::stack(lses) + log_w;                                               // [K, B, H, T]
    auto top = std::get<0>(a.max(0, /*keepdim=*/true)).detach();
    top = top.masked_fill(torch::isinf(top), 0.0);
    const auto e = torch::exp(a - top);
    const auto total = e.sum(0, /*keepdim=*/true);
    const auto alpha = e / total.masked_fill(total == 0, 1.0);                                // [K, B, H, T]
    return (alpha.unsqueeze(-1) * torch::stack(outs)).sum(0);
  }

  // Per head, the canonical union of the candidates at or above the threshold ("" = none).
  std::vector<std::string> surviving_unions() const {
    if (search_) return searched_.empty() ? std::vector<std::string>(n_heads_, "causal") : searched_;
    const auto w = weights().detach().to(torch::kDouble).cpu().expand({n_heads_, -1}).contiguous();
    std::vector<std::string> unions;
    for (std::int64_t h = 0; h < n_heads_; ++h) {
      const double top = w[h].max().item<double>();
      // st_gumbel deploys the argmax, what its training forward ran.
      const std::string mode = st_gumbel_ ? "argmax" : threshold_mode_;
      const double cut = mode == "relative" ? threshold_ * top : mode == "absolute" ? threshold_ : top;
      std::vector<std::string> kept;
      for (std::size_t c = 0; c < candidates_.size(); ++c)
        if (w[h][c].item<double>() >= cut && w[h][c].item<double>() > 0) {
          kept.push_back(candidates_[c]);
          if (mode == "argmax") break;  // ties: the first candidate listed
        }
      unions.push_back(kept.empty() ? "" : attnlab::masks::canonical(join(kept, "|")));
    }
    return unions;
  }

  // One layout per head: its union, or an empty layout where none survived.
  attnlab::kernels::LayoutSet head_layouts(const std::vector<std::string>& unions, std::int64_t T) const {
    attnlab::kernels::LayoutSet per_head;
    for (const auto& u : unions)
      per_head.push_back(u.empty() ? empty_layout(T) : attnlab::masks::block_layout(u, T, tile_));
    return per_head;
  }

  torch::Tensor forward_hard(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, std::int64_t,
                             double scale) {
    return run_unions(q, k, v, surviving_unions(), scale);
  }

  // Attention of each head over its own fixed mask (no weights): the kernel with one layout
  // per head (one, when they agree), or masked math.
  torch::Tensor run_unions(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                           const std::vector<std::string>& unions, double scale) {
    TORCH_CHECK(q.size(1) == n_heads_, "blend: built for ", n_heads_, " heads, got q with ", q.size(1));
    const std::int64_t T = q.size(2);
    if (execution_ == "block_sparse") {
      auto per_head = head_layouts(unions, T);
      const bool shared = std::all_of(per_head.begin(), per_head.end(), [&](const auto& l) { return l == per_head[0]; });
      return attnlab::kernels::block_sparse_attention(q, k, v, shared ? attnlab::kernels::LayoutSet{per_head[0]} : per_head,
                                                      scale);
    }
    std::vector<torch::Tensor> allowed;
    for (const auto& u : unions)
      allowed.push_back(u.empty() ? torch::zeros({T, T}, torch::TensorOptions().dtype(torch::kBool))
                                  : attnlab::masks::dense(u, T));
    auto scores = torch::matmul(q, k.transpose(-2, -1)) * scale;
    return torch::matmul(attnlab::kernels::masked_softmax(scores, torch::stack(allowed).to(q.device()).unsqueeze(0)), v);
  }

  // A head whose every candidate dropped out attends to nothing (its output is 0).
  std::shared_ptr<const attnlab::kernels::BlockLayout> empty_layout(std::int64_t T) const {
    auto& slot = empty_layouts_[T];
    if (!slot)
      slot = std::make_shared<const attnlab::kernels::BlockLayout>(attnlab::kernels::BlockLayout::from_dense(
          torch::zeros({T, T}, torch::TensorOptions().dtype(torch::kBool)), tile_));
    return slot;
  }

  // The K candidate masks as 0/1 numbers [K, T, T] in q's dtype and device.
  torch::Tensor candidate_stack(std::int64_t T, const torch::TensorOptions& like) {
    return stack_.get(candidates_, T, like);
  }

  std::vector<std::string> candidates_;
  attnlab::masks::StackCache stack_;
  std::string activation_;
  bool normalized_;
  std::string regularizer_kind_;
  double threshold_;
  std::string threshold_mode_;
  std::int64_t last_T_ = 0;
  double eps_;
  std::string execution_;
  bool mixture_;
  std::int64_t tile_, n_heads_, max_seq_len_;
  std::vector<double> densities_;
  torch::Tensor logits_;
  mutable std::map<std::int64_t, std::shared_ptr<const attnlab::kernels::BlockLayout>> empty_layouts_;
  bool st_gumbel_;
  double tau_start_, tau_final_, tau_;
  std::int64_t hard_after_step_, step_ = 0;
  bool fine_tuning_ = false;
  std::uint64_t noise_seed_;
  std::vector<std::string> last_unions_;  // st_gumbel: the masks the last training forward drew
  bool search_;         // the host chooses each head's candidate: "search" or "random"
  bool random_search_;  // ... from seeded random scores, not measured ones
  double budget_;
  std::int64_t search_batches_;
  std::vector<int> searched_choice_;   // search: the host's choice per head (an index, or kCausal)
  std::vector<std::string> searched_;  // ... and its mask expression
};

}  // namespace

ATTNLAB_PLUGIN(BlendAttention, "blend", "3.1.0",
               "learned blend of candidate masks: unnormalized + L1 (the seed's) or normalized + expected block cost; hard mode runs the kept union")
