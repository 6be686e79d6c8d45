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
//   P[b,h,t,:] = sum_k w[h,k] softmax over M_k of the scores   (soft = "mixture": one kernel pass
//                per candidate, mixed by w_k e^{lse_k}; soft = "masked": log(sum_k w M_k + eps) bias)
//   regularizer = "expected_cost"  mean_h sum_k w[h,k] · cost_k(T),
//                 cost_k(T) = block density of M_k / block density of causal, at the forward's T
//   Not scale-invariant: weight moved to a cheap candidate lowers the penalty, so lambda trades
//   KL for compute, from the causal layout at lambda = 0 towards the cheapest candidate.
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
//   out = sum_k w[h,k] e^{lse_k} out_k / sum_k w[h,k] e^{lse_k}
#include <attnlab/kernels/attention.hpp>
#include <attnlab/masks.hpp>
#include <attnlab/plugin.hpp>

#include <algorithm>
#include <cmath>
#include <map>

namespace {

std::string join(const std::vector<std::string>& parts, const char* sep) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
  return out;
}

class BlendAttention : public attnlab::AttentionBackend {
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
        max_seq_len_(init.max_seq_len) {
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
    logits_ = register_parameter("logits", initial);
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
                              "soft mode: log-mask bias on masked T x T math, or the normalizer-weighted mixture of per-candidate block-sparse passes"),
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
    const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
    if (hard()) return forward_hard(q, k, v, T, scale);
    if (mixture_) return forward_mixture(q, k, v, T, scale);
    const auto candidate_masks = candidate_stack(T, q.options());  // [K, T, T]
    const auto support = attnlab::masks::dense(join(candidates_, "|"), T).to(q.device());  // [T, T]
    const auto w = weights().to(q.scalar_type());                                          // [H|1, K]
    const auto soft = torch::tensordot(w, candidate_masks, {1}, {0}).clamp(0.0, 1.0);      // [H|1, T, T], <= 1 anyway when normalized
    auto scores = torch::matmul(q, k.transpose(-2, -1)) * scale + torch::log(soft + eps_).unsqueeze(0);
    return torch::matmul(attnlab::kernels::masked_softmax(scores, support), v);
  }

  torch::Tensor regularizer() override {
    auto w = weights();
    if (regularizer_kind_ == "expected_cost") {
      const auto cost = torch::tensor(costs(last_T_ > 0 ? last_T_ : max_seq_len_), torch::TensorOptions().dtype(torch::kDouble));
      return (w * cost.to(w.device(), w.scalar_type())).sum(1).mean();
    }
    if (regularizer_kind_ == "compute_l1")
      w = w * torch::tensor(densities_, torch::TensorOptions().dtype(torch::kDouble)).to(w.device(), w.scalar_type());
    return w.sum(1).mean();
  }

  // Each candidate's block density at T relative to the causal layout's: what keeping it costs
  // on the kernel, 1 for the full mask.
  std::vector<double> costs(std::int64_t T) const {
    std::vector<double> out;
    const double causal = attnlab::masks::density("causal", T, tile_).block;
    for (const auto& c : candidates_) out.push_back(attnlab::masks::density(c, T, tile_).block / causal);
    return out;
  }

  std::vector<attnlab::Statistic> statistics() override {
    std::vector<attnlab::Statistic> out;
    const auto w = weights().detach().to(torch::kDouble).cpu().expand({n_heads_, -1}).contiguous();
    for (std::int64_t h = 0; h < n_heads_; ++h)
      for (std::size_t c = 0; c < candidates_.size(); ++c)
        out.push_back({"weight/h" + std::to_string(h) + "/" + candidates_[c], w[h][c].item<double>()});
    const auto d = attnlab::density_of(head_layouts(max_seq_len_));
    out.push_back({"density/hard_element", d.element});
    out.push_back({"density/hard_block", d.block});
    return out;
  }

  // Hard mode: each head's surviving union (one layout for all heads when they agree);
  // soft mode: the support every soft row may attend to, the union of all candidates.
  attnlab::kernels::LayoutSet layouts(std::int64_t T) const override {
    if (!hard()) return {attnlab::masks::block_layout(join(candidates_, "|"), T, tile_)};
    auto per_head = head_layouts(T);
    const bool shared = std::all_of(per_head.begin(), per_head.end(), [&](const auto& l) { return l == per_head[0]; });
    return shared ? attnlab::kernels::LayoutSet{per_head[0]} : per_head;
  }

  // Soft masked math and hard reference compute every element of T x T; the mixture runs one
  // kernel pass per candidate over that candidate's tiles; hard block_sparse the union's.
  attnlab::Cost cost(const attnlab::AttentionShape& shape) const override {
    if (!hard() && mixture_) {
      attnlab::Cost total;
      for (const auto& c : candidates_) {
        const auto one = attnlab::mask_cost({attnlab::masks::block_layout(c, shape.seq_len, tile_)}, shape);
        total.forward_flops += one.forward_flops;
        total.backward_flops += one.backward_flops;
      }
      return total;
    }
    if (!hard() || execution_ == "reference") return attnlab::full_cost(shape);
    return attnlab::mask_cost(layouts(shape.seq_len), shape);
  }

 private:
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
    const auto w = weights().detach().to(torch::kDouble).cpu().expand({n_heads_, -1}).contiguous();
    std::vector<std::string> unions;
    for (std::int64_t h = 0; h < n_heads_; ++h) {
      const double top = w[h].max().item<double>();
      const double cut = threshold_mode_ == "relative" ? threshold_ * top : threshold_mode_ == "absolute" ? threshold_ : top;
      std::vector<std::string> kept;
      for (std::size_t c = 0; c < candidates_.size(); ++c)
        if (w[h][c].item<double>() >= cut && w[h][c].item<double>() > 0) {
          kept.push_back(candidates_[c]);
          if (threshold_mode_ == "argmax") break;  // ties: the first candidate listed
        }
      unions.push_back(kept.empty() ? "" : attnlab::masks::canonical(join(kept, "|")));
    }
    return unions;
  }

  // One layout per head: its surviving union, or an empty layout where none survived.
  attnlab::kernels::LayoutSet head_layouts(std::int64_t T) const {
    attnlab::kernels::LayoutSet per_head;
    for (const auto& u : surviving_unions())
      per_head.push_back(u.empty() ? empty_layout(T) : attnlab::masks::block_layout(u, T, tile_));
    return per_head;
  }

  torch::Tensor forward_hard(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, std::int64_t T,
                             double scale) {
    TORCH_CHECK(q.size(1) == n_heads_, "blend: built for ", n_heads_, " heads, got q with ", q.size(1));
    if (execution_ == "block_sparse") return attnlab::kernels::block_sparse_attention(q, k, v, layouts(T), scale);
    std::vector<torch::Tensor> allowed;
    for (const auto& u : surviving_unions())
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
};

}  // namespace

ATTNLAB_PLUGIN(BlendAttention, "blend", "2.1.0",
               "learned blend of candidate masks: unnormalized + L1 (the seed's) or normalized + expected block cost; hard mode runs the kept union")
