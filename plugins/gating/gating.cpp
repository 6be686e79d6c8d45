// gating: an input-dependent gate mixes K candidate-mask attentions; on the kernel it computes
// only what it selects.
//
//   M_k        = candidate_k's mask (causal), L_k its block layout at tile = block    k = 1..K
//   g[b,h,i,:] = gate(W[h] q[b,h,first(i)] + b[h])       [B, H, n_blocks, K], gate = softmax | sigmoid
//                one gate per query block i of `block` queries, from its first query (a mean
//                over the block would leak future queries); granularity = query: per query
//   W [H, K, D], b [H, K]  learned
//   q [B, H, T, D], k, v [B, H, S, D] -> out [B, H, T, D]   (S == T)
//
// execution = "block_sparse" (default; softmax gates, granularity = block, 16 <= block <= 256):
//   soft:  out[t] = sum_k g_k[t] out_k[t],  out_k = block_sparse_attention(q, k, v, L_k)
//          = sum_k g_k softmax_{M_k}(scores) V exactly: K kernel passes, each over L_k's tiles
//          (blend's mixture, mixed per query by the gate instead of per head)
//   hard:  c[b,h,i] = argmax_k g[b,h,i,k]; one layout per (b, h) whose query-tile row i is row
//          i of L_{c[b,h,i]} (compose.hpp: O(nnz), no T x T), one kernel pass
//   density reported = what ran: soft, every candidate's tiles (cost = mixture_cost: sum_k mask_cost(L_k));
//   hard, the composed rows (layouts() = those B*H layouts)
// execution = "masked" (any gate, any granularity): one shared set of T x T scores
//   e[t,s] = exp(q·k/sqrt(D) - max_{s'<=t}) on s <= t;  Z_k[t] = sum_s e M_k;
//   P = e · sum_k g_k M_k / Z_k  (= sum_k g_k softmax_{M_k});  out = P v
//   dense cost in both modes, reported as such (cost = full T x T + the two K-contractions);
//   a candidate with no key in row t (Z_k = 0) contributes 0 to that row.
//
// regularizer = "compute"  sum_k mean_{b,h,t}(g_k) · density_k   (gate mass on expensive masks)
//             = "entropy"  mean_{b,h,t} gate entropy (categorical for softmax, sum of Bernoulli
//                          entropies for sigmoid): pushes gates to commit
// hard mode: softmax gates become one-hot at the argmax, sigmoid gates round at 1/2.
// Numerics (masked): e is shifted by the causal row max, so a candidate whose keys all score
// > ~80 below it (float32) underflows to Z_k = 0 and counts as empty for that row.
#include "compose.hpp"

#include <attnlab/kernels/attention.hpp>
#include <attnlab/masks.hpp>
#include <attnlab/plugin.hpp>
#include <attnlab/random.hpp>

#include <cmath>
#include <map>

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
        sparse_(init.params.get_string("execution") == "block_sparse"),
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
            ParamSpec::choice("granularity", "block", {"query", "block"},
                              "one gate per block of `block` queries (from its first query), or per query (masked only)"),
            ParamSpec::integer("block", 64, 1, 4096,
                               "query block size for granularity = block; block_sparse: also the kernel's tile (16..256)"),
            ParamSpec::choice("regularizer", "compute", {"compute", "entropy"},
                              "gate mass weighted by mask density, or mean gate entropy"),
            ParamSpec::real("init_scale", 0.02, 0.0, 1.0, "std of the initial gate weights W (b starts at 0)"),
            attnlab::param::execution({"block_sparse", "masked"},
                                      "block_sparse: per-candidate kernel passes (soft), the chosen rows (hard); "
                                      "masked: shared T x T scores, dense cost in both modes")};
  }

  // A malformed candidate list, or a kernel path the gates cannot drive, is refused while the
  // sweep loads, not when its trial runs.
  static void validate(const attnlab::Params& params) {
    attnlab::masks::parse_list_param("candidates", params.get_string("candidates"));
    if (params.get_string("execution") != "block_sparse") return;
    const std::string hint = "use gate = \"softmax\", granularity = \"block\" and 16 <= block <= 256, or execution = \"masked\"";
    if (params.get_string("gate") != "softmax")
      throw attnlab::ParamError("gate", "execution = 'block_sparse' needs softmax gates (one candidate per query tile)", hint);
    if (params.get_string("granularity") != "block")
      throw attnlab::ParamError("granularity", "execution = 'block_sparse' gates per query tile: granularity must be 'block'", hint);
    const auto block = params.get_int("block");
    if (block < 16 || block > 256)
      throw attnlab::ParamError("block", "execution = 'block_sparse' uses block as the kernel's tile: " +
                                             std::to_string(block) + " is outside 16..256", hint);
  }

  // block_sparse: soft mode runs every candidate (their union is the support a row may see,
  // the density counts each pass: see cost); hard mode the last forward's composed layouts.
  // masked: soft computes every causal score; hard attends per query to the chosen keys.
  attnlab::kernels::LayoutSet layouts(std::int64_t T) const override {
    if (sparse_) {
      if (!hard()) return {attnlab::masks::block_layout(union_expression(), T, block_)};
      if (!last_layouts_.empty() && last_layouts_.front()->T == T) return last_layouts_;
      return {attnlab::masks::block_layout("causal", T, block_)};  // no forward at T yet
    }
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

  // What executed. block_sparse soft: one kernel pass per candidate over its tiles; hard: the
  // composed layouts. masked: the full T x T scores and P V plus the two contractions over K.
  attnlab::Cost cost(const attnlab::AttentionShape& shape) const override {
    if (sparse_ && hard()) return attnlab::mask_cost(layouts(shape.seq_len), shape);
    if (sparse_) return attnlab::mixture_cost(candidates_, shape, block_);
    auto cost = attnlab::full_cost(shape);
    const double T = static_cast<double>(shape.seq_len), K = static_cast<double>(candidates_.size());
    const double mix = 4.0 * K * T * T * static_cast<double>(shape.batch * shape.heads);
    cost.forward_flops += mix;
    cost.backward_flops += 2.0 * mix;
    return cost;
  }

  torch::Tensor forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) override {
    const double scale = attnlab::kernels::softmax_scale(q.size(-1));
    const auto logits = gate_logits(q);  // [B, H, T | n_blocks, K]
    last_gates_ = per_query(gates_of(logits, q.scalar_type()), q.size(2));
    if (!sparse_) return forward_masked(q, k, v, scale);
    if (hard()) return forward_hard(q, k, v, logits, scale);
    last_layouts_.clear();
    torch::Tensor out;
    for (std::size_t c = 0; c < candidates_.size(); ++c) {
      const auto out_c = attnlab::kernels::block_sparse_attention(
          q, k, v, {attnlab::masks::block_layout(candidates_[c], q.size(2), block_)}, scale);
      const auto term = last_gates_.select(-1, static_cast<std::int64_t>(c)).unsqueeze(-1) * out_c;
      out = out.defined() ? out + term : term;
    }
    return out;
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
  // Gate logits per query (granularity = query) or per block of queries, from its first query.
  torch::Tensor gate_logits(const torch::Tensor& q) const {
    auto source = q;
    if (granularity_ == "block") {
      const auto starts = torch::arange(0, q.size(2), block_, torch::TensorOptions().dtype(torch::kLong).device(q.device()));
      source = q.index_select(2, starts);
    }
    return torch::einsum("bhtd,hkd->bhtk", {source, W_.to(q.scalar_type())}) +
           b_.to(q.scalar_type()).unsqueeze(0).unsqueeze(2);
  }

  torch::Tensor gates_of(const torch::Tensor& logits, torch::ScalarType dtype) const {
    if (gate_ == "softmax") {
      if (hard()) return torch::one_hot(logits.argmax(-1), logits.size(-1)).to(dtype);
      return torch::softmax(logits, -1);
    }
    if (hard()) return (logits >= 0).to(dtype);
    return torch::sigmoid(logits);
  }

  // Block gates [B, H, n_blocks, K] repeated over each block's queries -> [B, H, T, K].
  torch::Tensor per_query(const torch::Tensor& gates, std::int64_t T) const {
    if (granularity_ != "block") return gates;
    const auto t = torch::arange(T, torch::TensorOptions().dtype(torch::kLong).device(gates.device()));
    return gates.index_select(2, torch::div(t, block_, "floor"));
  }

  // One kernel pass over layouts composed from each query tile's chosen candidate.
  torch::Tensor forward_hard(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             const torch::Tensor& logits, double scale) {
    const std::int64_t T = q.size(2);
    auto& composer = composers_[T];
    if (!composer) {
      std::vector<std::shared_ptr<const attnlab::kernels::BlockLayout>> layouts;
      for (const auto& c : candidates_) layouts.push_back(attnlab::masks::block_layout(c, T, block_));
      composer = std::make_unique<attnlab_gating::LayoutComposer>(std::move(layouts));
    }
    const auto choice = logits.argmax(-1).reshape({q.size(0) * q.size(1), -1});  // [B*H, n_blocks]
    last_layouts_ = composer->compose(choice);
    return attnlab::kernels::block_sparse_attention(q, k, v, last_layouts_, scale);
  }

  // Masked T x T math from one shared set of scores (see the header).
  torch::Tensor forward_masked(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, double scale) {
    const std::int64_t T = q.size(2);
    const auto candidate_masks = stack_.get(candidates_, T, q.options());  // [K, T, T]
    const auto causal = attnlab::masks::dense("causal", T).to(q.device());
    auto scores = (torch::matmul(q, k.transpose(-2, -1)) * scale).masked_fill(causal.logical_not(), -INFINITY);
    const auto row_max = std::get<0>(scores.max(-1, /*keepdim=*/true)).detach();  // finite: s = t is allowed
    const auto e = torch::exp(scores - row_max);                                     // [B, H, T, T]
    const auto Z = torch::einsum("bhts,kts->bhtk", {e, candidate_masks});            // [B, H, T, K]
    const auto has_keys = Z > 0;
    const auto mix = torch::where(has_keys, last_gates_ / Z.masked_fill(has_keys.logical_not(), 1.0), torch::zeros_like(Z));
    const auto P = e * torch::einsum("bhtk,kts->bhts", {mix, candidate_masks});
    return torch::matmul(P, v);
  }

  std::string union_expression() const {
    std::string out;
    for (std::size_t i = 0; i < candidates_.size(); ++i) out += (i ? "|" : "") + candidates_[i];
    return out;
  }

  std::vector<std::string> candidates_;
  attnlab::masks::StackCache stack_;
  std::string gate_, granularity_;
  std::int64_t block_;
  std::string regularizer_kind_;
  bool sparse_;
  std::int64_t max_seq_len_;
  std::vector<double> densities_;
  torch::Tensor W_, b_, last_gates_;
  attnlab::kernels::LayoutSet last_layouts_;  // hard block_sparse: the last forward's, one per (b, h)
  std::map<std::int64_t, std::unique_ptr<attnlab_gating::LayoutComposer>> composers_;  // per T
};

}  // namespace

ATTNLAB_PLUGIN(GatedAttention, "gating", "3.0.0",
               "input-dependent gate over candidate masks: per-candidate kernel passes (soft), the chosen tiles (hard), or masked T x T math")
