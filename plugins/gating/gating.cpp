// gating: an input-dependent gate mixes K candidate-mask attentions, from one shared set of
// scores (one exp, K masked row sums, one P·V) instead of K full attention passes.
//
//   M_k        = masks::dense(candidate_k, T)                      bool [K, T, T], causal
//   g[b,h,t,:] = gate(W[h] q' + b[h])                              [B, H, T, K], gate = softmax | sigmoid
//                q' = q[b,h,t]          (granularity = query)
//                q' = q[b,h,first(t)]   (granularity = block: the first query of t's block of `block`
//                                        queries; a mean over the block would leak future queries)
//   W [H, K, D], b [H, K]  learned
//   e[t,s]     = exp(q·k/sqrt(D) - max_{s'<=t} q·k/sqrt(D))  on s <= t, else 0
//   Z_k[t]     = sum_s e[t,s] M_k[t,s]                          per-candidate softmax normalizer
//   P[t,s]     = e[t,s] · sum_k g_k[t] M_k[t,s] / Z_k[t]          = sum_k g_k softmax_{M_k}(scores)[t,s]
//   out        = P v                 q [B,H,T,D], k, v [B,H,S,D] -> out [B,H,T,D]   (S == T)
//   a candidate with no key in row t (Z_k = 0) contributes 0 to that row.
//   Z_k and P's mixing are two batched contractions over K (einsum), not K passes.
//
// regularizer = "compute"  sum_k mean_{b,h,t}(g_k) · density_k   (gate mass on expensive masks)
//             = "entropy"  mean_{b,h,t} gate entropy (categorical for softmax, sum of Bernoulli
//                          entropies for sigmoid): pushes gates to commit
// hard mode: softmax gates become one-hot at the argmax, sigmoid gates round at 1/2.
// Numerics: e is shifted by the causal row max, so a candidate whose keys all score > ~80 below
// it (float32) underflows to Z_k = 0 and counts as empty for that row.
#include <attnlab/masks.hpp>
#include <attnlab/plugin.hpp>

#include <attnlab/random.hpp>

#include <cmath>

namespace {

class GatedAttention : public attnlab::AttentionBackend {
 public:
  explicit GatedAttention(const attnlab::BackendInit& init)
      : AttentionBackend("GatedAttention"),
        candidates_(attnlab::masks::parse_list_param("candidates", init.params.get_string("candidates"))),
        gate_(init.params.get_string("gate")),
        granularity_(init.params.get_string("granularity")),
        block_(init.params.get_int("block")),
        regularizer_kind_(init.params.get_string("regularizer")),
        max_seq_len_(init.max_seq_len) {
    const std::int64_t K = static_cast<std::int64_t>(candidates_.size());
    auto generator = attnlab::seeded_generator(init.seed + 7919u * static_cast<std::uint64_t>(init.layer_index));
    W_ = register_parameter("W", at::randn({init.n_heads, K, init.head_dim}, generator, torch::TensorOptions()) *
                                     init.params.get_float("init_scale"));
    b_ = register_parameter("b", torch::zeros({init.n_heads, K}));
    for (const auto& c : candidates_) densities_.push_back(attnlab::masks::density(c, max_seq_len_, 64).element);
  }

  static std::vector<attnlab::ParamSpec> schema() {
    using attnlab::ParamSpec;
    return {ParamSpec::text("candidates", "causal,window:64,stride:64,sink:4|window:16",
                            "comma-separated candidate mask expressions (grammar of the masks backend)"),
            ParamSpec::choice("gate", "softmax", {"softmax", "sigmoid"}, "gate nonlinearity over the K candidates"),
            ParamSpec::choice("granularity", "query", {"query", "block"},
                              "one gate per query, or per block of `block` queries (from its first query)"),
            ParamSpec::integer("block", 64, 1, 4096, "query block size for granularity = block"),
            ParamSpec::choice("regularizer", "compute", {"compute", "entropy"},
                              "gate mass weighted by mask density, or mean gate entropy"),
            ParamSpec::real("init_scale", 0.02, 0.0, 1.0, "std of the initial gate weights W (b starts at 0)")};
  }

  // A malformed candidate list is refused while the sweep loads, not when its trial runs.
  static void validate(const attnlab::Params& params) {
    attnlab::masks::parse_list_param("candidates", params.get_string("candidates"));
  }

  // Soft mode computes every causal score; hard mode attends, per query, to the chosen
  // candidate's keys: one layout per (b, h) from the last forward's gates.
  attnlab::kernels::LayoutSet layouts(std::int64_t T) const override {
    if (!hard() || !last_gates_.defined() || last_gates_.size(2) != T) return {attnlab::masks::block_layout("causal", T, 64)};
    const auto masks = attnlab::masks::stack(candidates_, T, last_gates_.options());
    const auto allowed = torch::einsum("bhtk,kts->bhts", {last_gates_, masks}).gt(0).cpu();
    attnlab::kernels::LayoutSet out;
    for (std::int64_t b = 0; b < allowed.size(0); ++b)
      for (std::int64_t h = 0; h < allowed.size(1); ++h)
        out.push_back(std::make_shared<const attnlab::kernels::BlockLayout>(
            attnlab::kernels::BlockLayout::from_dense(allowed[b][h].contiguous(), 64)));
    return out;
  }

  // One-hot (softmax) hard gates pick one candidate per query: a plain masked softmax. Sigmoid
  // gates may keep several, and the output mixes their softmaxes.
  bool exact_in_hard_mode() const override { return gate_ == "softmax"; }

  // The full T x T scores and P V, plus the two contractions over the K candidates.
  attnlab::Cost cost(const attnlab::AttentionShape& shape) const override {
    auto cost = attnlab::full_cost(shape);
    const double T = static_cast<double>(shape.seq_len), K = static_cast<double>(candidates_.size());
    const double mix = 4.0 * K * T * T * static_cast<double>(shape.batch * shape.heads);
    cost.forward_flops += mix;
    cost.backward_flops += 2.0 * mix;
    return cost;
  }

  torch::Tensor forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) override {
    const std::int64_t T = q.size(2);
    const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
    const auto gates = gate_values(q);  // [B, H, T, K]
    last_gates_ = gates;

    const auto candidate_masks = candidate_stack(T, q.options());  // [K, T, T]
    const auto causal = attnlab::masks::dense("causal", T).to(q.device());

    auto scores = (torch::matmul(q, k.transpose(-2, -1)) * scale).masked_fill(causal.logical_not(), -INFINITY);
    const auto row_max = std::get<0>(scores.max(-1, /*keepdim=*/true)).detach();  // finite: s = t is allowed
    const auto e = torch::exp(scores - row_max);                                     // [B, H, T, T]
    const auto Z = torch::einsum("bhts,kts->bhtk", {e, candidate_masks});            // [B, H, T, K]
    const auto has_keys = Z > 0;
    const auto mix = torch::where(has_keys, gates / Z.masked_fill(has_keys.logical_not(), 1.0), torch::zeros_like(Z));
    const auto P = e * torch::einsum("bhtk,kts->bhts", {mix, candidate_masks});
    return torch::matmul(P, v);
  }

  torch::Tensor regularizer() override {
    if (!last_gates_.defined()) return {};  // no forward yet: no term
    const auto g = last_gates_;
    if (regularizer_kind_ == "compute") {
      const auto d = torch::tensor(densities_, torch::TensorOptions().dtype(torch::kDouble)).to(g.device(), g.scalar_type());
      return (g.mean({0, 1, 2}) * d).sum();
    }
    const auto plogp = [](const torch::Tensor& p) { return p * torch::log(p.clamp_min(1e-12)); };
    if (gate_ == "softmax") return -plogp(g).sum(-1).mean();
    return -(plogp(g) + plogp(1 - g)).sum(-1).mean();
  }

  std::vector<attnlab::Statistic> statistics() override {
    std::vector<attnlab::Statistic> out;
    if (!last_gates_.defined()) return out;
    const auto usage = last_gates_.detach().mean({0, 1, 2}).to(torch::kDouble).cpu();
    double expected_density = 0.0;
    for (std::size_t c = 0; c < candidates_.size(); ++c) {
      const double u = usage[static_cast<std::int64_t>(c)].item<double>();
      out.push_back({"gate/" + candidates_[c], u});
      expected_density += u * densities_[c];
    }
    out.push_back({"density/gate_weighted_element", expected_density});
    return out;
  }

 private:
  torch::Tensor gate_values(const torch::Tensor& q) const {
    auto source = q;
    if (granularity_ == "block") {
      const auto t = torch::arange(q.size(2), torch::TensorOptions().dtype(torch::kLong).device(q.device()));
      source = q.index_select(2, torch::div(t, block_, "floor") * block_);
    }
    const auto logits = torch::einsum("bhtd,hkd->bhtk", {source, W_.to(q.scalar_type())}) +
                        b_.to(q.scalar_type()).unsqueeze(0).unsqueeze(2);
    if (gate_ == "softmax") {
      if (hard()) return torch::one_hot(logits.argmax(-1), logits.size(-1)).to(q.scalar_type());
      return torch::softmax(logits, -1);
    }
    if (hard()) return (logits >= 0).to(q.scalar_type());
    return torch::sigmoid(logits);
  }

  // The K candidate masks as 0/1 numbers [K, T, T] in q's dtype and device.
  torch::Tensor candidate_stack(std::int64_t T, const torch::TensorOptions& like) {
    return stack_.get(candidates_, T, like);
  }

  std::vector<std::string> candidates_;
  attnlab::masks::StackCache stack_;
  std::string gate_, granularity_;
  std::int64_t block_;
  std::string regularizer_kind_;
  std::int64_t max_seq_len_;
  std::vector<double> densities_;
  torch::Tensor W_, b_, last_gates_;
};

}  // namespace

ATTNLAB_PLUGIN(GatedAttention, "gating", "2.0.0",
               "input-dependent gate over candidate masks, mixed from shared scores (per query or query block)")
