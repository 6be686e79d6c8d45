// topk: differentiable top-k key selection (SPARSEK / MoBA style), causal.
//
//   units u of row t: keys s < t                       (granularity = token)
//                     key blocks j < t/block, scored   (granularity = block: blocks of `block`
//                     against mean_{s in j} k[s]        keys; past blocks only, so no future leak)
//   own unit (token t / block t/block) is always kept with weight 1 and does not compete.
//   sel score  r[t,u] = (q[t] ⊙ exp(g_h)) · key_u / sqrt(D)     g [H, D] learned metric, init 0
//   budget     k (k > 0) or ceil(fraction · units) (k = 0), own unit included: n = k - 1 compete
//   threshold  tau[t] = (r_(n) + r_(n+1)) / 2   midway between the n-th and (n+1)-th largest
//              competing score (-inf where the row has <= n units: all kept; +inf for n = 0)
//   soft       sel = sigmoid((r - tau) / temperature)   exactly n units above 1/2
//   hard       sel = [r >= tau];  straight_through: hard forward, soft gradient
//   out[b,h,t] = sum_{s<=t} softmax_s(q·k/sqrt(D) + log(sel[t,unit(s)] + eps)) v[b,h,s]
//   q [B,H,T,D], k, v [B,H,S,D] -> out [B,H,T,D]   (S == T)
// temperature anneals linearly from `temperature` to `temperature_final` through on_step.
// set_hard(true): the hard selection runs as a fixed mask (no log bias): masked math, or with
// execution = block_sparse the kernel over one layout per (b, h). With granularity = block and
// block = tile (MoBA) those layouts are built from the [T, T/block] block choice directly
// (BlockLayout::from_block_selection): no T x T tensor, and the cost follows the budget k.
// With k >= T every row keeps every causal key and topk equals dense.
//
// granularity = query_block (the deployed path): blocks are the kernel's tiles (`tile`), and
// each query tile i keeps its diagonal block, the `sink_blocks` leading blocks and the best
// earlier blocks by the gate's score, k blocks in all (forced ones included; k = 0: ceil(fraction
// · nq)). The gate (block_gate.hpp: mean | learned | oracle | random) scores [B, H, nq, nq]; one
// batched top-k builds kv_num_blocks / kv_indices (kernels::select_blocks) and the kernel
// computes only those tiles (kernels::block_select_attention), in both modes: the model always
// runs hard top-k (no soft relaxation; gradients reach q, k, v through the chosen tiles). The
// learned gate trains by KL to the layer's own block-pooled attention (inputs detached), returned
// as regularizer() (scaled by the sweep's lambda) while training. The statistic select_ms is the
// last forward's gate + top-k wall time. execution = reference runs the same selection as a
// T x T masked reference (checks only). gate = oracle is not causal (block_gate.hpp).
#include "block_gate.hpp"

#include <attnlab/kernels/attention.hpp>
#include <attnlab/masks.hpp>
#include <attnlab/plugin.hpp>
#include <attnlab/random.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>

namespace {

class TopkAttention : public attnlab::AttentionBackend {
 public:
  explicit TopkAttention(const attnlab::BackendInit& init)
      : AttentionBackend("TopkAttention"),
        granularity_(init.params.get_string("granularity")),
        block_(init.params.get_int("block")),
        k_(init.params.get_int("k")),
        fraction_(init.params.get_float("fraction")),
        temperature_start_(init.params.get_float("temperature")),
        temperature_final_(init.params.get_float("temperature_final")),
        temperature_(temperature_start_),
        straight_through_(init.params.get_bool("straight_through")),
        eps_(init.params.get_float("eps")),
        execution_(init.params.get_string("execution")),
        tile_(init.params.get_int("tile")),
        gate_(init.params.get_string("gate")),
        sink_blocks_(init.params.get_int("sink_blocks")),
        seed_(init.seed * 1000003ull + static_cast<std::uint64_t>(init.layer_index)) {
    // query_block selects by its gate alone: the per-head metric would be a parameter no loss
    // reaches, and a distill trial would try to train it (mean / oracle / random gates then
    // have no trainable parameters, and are evaluated as they are).
    if (granularity_ != "query_block")
      log_gain_ = register_parameter("log_gain", torch::zeros({init.n_heads, init.head_dim}));
    if (granularity_ == "query_block" && gate_ == "learned") {
      const std::int64_t D = init.head_dim, G = init.params.get_int("gate_dim") ? init.params.get_int("gate_dim") : D;
      const auto eye = torch::eye(D).narrow(1, 0, std::min(G, D));
      const auto w = G > D ? torch::cat({eye, torch::zeros({D, G - D})}, 1) : eye;
      gate_q_ = register_parameter("gate_q", w.unsqueeze(0).repeat({init.n_heads, 1, 1}));
      gate_k_ = register_parameter("gate_k", w.unsqueeze(0).repeat({init.n_heads, 1, 1}));
    }
  }

  static std::vector<attnlab::ParamSpec> schema() {
    using attnlab::ParamSpec;
    return {ParamSpec::choice("granularity", "token", {"token", "block", "query_block"},
                                "select single keys or key blocks per query, or key tiles per query tile on the block-selection kernel"),
            ParamSpec::integer("block", 64, 1, 4096, "key block size for granularity = block"),
            ParamSpec::integer("k", 0, 0, 1 << 20, "units kept per query (query_block: key tiles per query tile), own unit and sinks included; 0 = use fraction"),
            ParamSpec::real("fraction", 0.25, 1e-4, 1.0, "budget as a fraction of T (or of the key blocks) when k = 0"),
            ParamSpec::real("temperature", 1.0, 1e-4, 100.0, "sigmoid temperature at step 0"),
            ParamSpec::real("temperature_final", 0.1, 1e-4, 100.0, "temperature reached at the last step"),
            ParamSpec::boolean("straight_through", false, "hard 0/1 selection forward, soft gradient backward"),
            ParamSpec::real("eps", 1e-6, 1e-12, 0.1, "log(sel + eps) floor"),
            attnlab::param::execution({"reference", "block_sparse"},
                                      "how hard mode runs the selection (soft mode always masked math)"),
            attnlab::param::tile(),
            ParamSpec::choice("gate", "mean", {"mean", "learned", "oracle", "random"},
                              "query_block: block score (mean-pooled q.k; learned projections; dense block attention mass, not deployable; random)"),
            ParamSpec::integer("sink_blocks", 0, 0, 1 << 20, "query_block: leading key tiles every query tile keeps"),
            ParamSpec::integer("gate_dim", 0, 0, 4096, "query_block, gate = learned: projection width G (0 = D)")};
  }

  void on_step(std::int64_t step, std::int64_t total_steps) override {
    // The trainer passes step = 0 .. total_steps - 1: the last step reaches temperature_final.
    const double progress =
        total_steps > 1 ? std::clamp(static_cast<double>(step) / static_cast<double>(total_steps - 1), 0.0, 1.0) : 1.0;
    temperature_ = temperature_start_ + (temperature_final_ - temperature_start_) * progress;
  }

  torch::Tensor forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) override {
    const std::int64_t T = q.size(2);
    const double scale = attnlab::kernels::softmax_scale(q.size(-1));
    if (granularity_ == "query_block") return forward_blocks(q, k, v, scale);
    // MoBA on the kernel: key blocks that are the kernel's tiles go straight into one layout
    // per (b, h), without any T x T tensor (the selection is [B, H, T, T / block]).
    if (hard() && execution_ == "block_sparse" && granularity_ == "block" && block_ == tile_) {
      torch::Tensor chosen;
      {
        torch::NoGradGuard no_grad;  // the hard selection carries no gradient
        chosen = selection(q, k, scale, /*expand=*/false).second.cpu();
      }
      attnlab::kernels::LayoutSet layouts;
      for (std::int64_t b = 0; b < chosen.size(0); ++b)
        for (std::int64_t h = 0; h < chosen.size(1); ++h)
          layouts.push_back(std::make_shared<const attnlab::kernels::BlockLayout>(
              attnlab::kernels::BlockLayout::from_block_selection(chosen[b][h].contiguous(), T, tile_)));
      last_layouts_ = layouts;
      last_selected_ = torch::Tensor();
      return attnlab::kernels::block_sparse_attention(q, k, v, layouts, scale);
    }
    last_layouts_.clear();
    const auto causal = attnlab::masks::dense("causal", T).to(q.device());
    const auto [soft, hard_sel] = selection(q, k, scale);  // [B, H, T, T] each, per key
    const auto allowed = hard_sel.logical_and(causal);
    last_selected_ = allowed.detach();

    auto scores = torch::matmul(q, k.transpose(-2, -1)) * scale;
    if (hard()) {
      if (execution_ == "block_sparse") return block_sparse(q, k, v, allowed, scale);
      return torch::matmul(torch::softmax(scores.masked_fill(allowed.logical_not(), -INFINITY), -1), v);
    }
    const auto sel = straight_through_ ? hard_sel.to(soft.scalar_type()) + soft - soft.detach() : soft;
    scores = (scores + torch::log(sel + eps_)).masked_fill(causal.logical_not(), -INFINITY);
    return torch::matmul(torch::softmax(scores, -1), v);  // the own key keeps every row non-empty
  }

  torch::Tensor regularizer() override { return gate_loss_; }

  std::vector<attnlab::Statistic> statistics() override {
    if (granularity_ == "query_block") return {{"select_ms", last_select_ms_}};
    std::vector<attnlab::Statistic> out{{"temperature", temperature_}};
    if (last_selected_.defined()) {
      const double T = static_cast<double>(last_selected_.size(-1));
      out.push_back({"density/selected_element",
                     last_selected_.to(torch::kDouble).sum({2, 3}).mean().item<double>() / (T * T)});
    }
    return out;
  }

  // Soft mode computes every causal score (the selection only biases them): the causal
  // layout. Hard mode: the last forward's selection at this T, one layout per (b, h) (before
  // any forward: causal). The soft selection's own density is the statistic
  // density/selected_element.
  attnlab::kernels::LayoutSet layouts(std::int64_t T) const override {
    if (granularity_ == "query_block") {  // what executed: the last forward's block list
      if (last_selection_.kv_num_blocks.defined() && last_T_ == T)
        return attnlab::kernels::block_list_layouts(last_selection_, T);
      return {attnlab::masks::block_layout("causal", T, tile_)};
    }
    if (hard() && !last_layouts_.empty() && last_layouts_.front()->T == T) return last_layouts_;
    if (!hard() || !last_selected_.defined() || last_selected_.size(-1) != T)
      return {attnlab::masks::block_layout("causal", T, tile_)};
    const auto selected = last_selected_.cpu();
    attnlab::kernels::LayoutSet out;
    for (std::int64_t b = 0; b < selected.size(0); ++b)
      for (std::int64_t h = 0; h < selected.size(1); ++h)
        out.push_back(std::make_shared<const attnlab::kernels::BlockLayout>(
            attnlab::kernels::BlockLayout::from_dense(selected[b][h].contiguous(), tile_)));
    return out;
  }

  // Scoring the units (q against every key or key-block mean), then: masked T x T math
  // (soft, and hard reference) or the kernel over the selection (hard block_sparse).
  attnlab::Cost cost(const attnlab::AttentionShape& shape) const override {
    if (granularity_ == "query_block") return block_cost(shape);
    auto cost = hard() && execution_ == "block_sparse" ? attnlab::mask_cost(layouts(shape.seq_len), shape)
                                                       : attnlab::full_cost(shape);
    const double T = static_cast<double>(shape.seq_len);
    const double units = granularity_ == "token" ? T : std::ceil(T / static_cast<double>(block_));
    const double selection = 2.0 * T * units * static_cast<double>(shape.head_dim * shape.batch * shape.heads);
    cost.forward_flops += selection;
    cost.backward_flops += 2.0 * selection;
    return cost;
  }

 private:
  // granularity = query_block: gate scores -> block list -> the kernel over those tiles.
  torch::Tensor forward_blocks(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, double scale) {
    const std::int64_t T = q.size(2);
    const auto t0 = std::chrono::steady_clock::now();
    const torch::Tensor logits = gate_scores(q, k, scale);
    attnlab::kernels::BlockSelection sel =
        attnlab::kernels::select_blocks(logits.detach(), budget(T), sink_blocks_, tile_);
    last_select_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    last_selection_ = sel;
    last_T_ = T;
    gate_loss_ = torch::Tensor();
    if (gate_ == "learned" && is_training() && torch::GradMode::is_enabled()) {
      torch::Tensor target;
      {
        torch::NoGradGuard no_grad;
        target = attnlab::topk_gate::block_mass(q.detach(), k.detach(), tile_, scale);
      }
      gate_loss_ = attnlab::topk_gate::gate_kl(target, logits);
    }
    if (execution_ == "reference")
      return attnlab::kernels::reference_attention(q, k, v, attnlab::kernels::block_list_to_dense(sel, T), scale);
    return attnlab::kernels::block_select_attention(q, k, v, sel, scale);
  }

  // [B, H, nq, nq]; differentiable (w.r.t. the gate's own weights) only for gate = learned.
  torch::Tensor gate_scores(const torch::Tensor& q, const torch::Tensor& k, double scale) {
    if (gate_ == "learned") {
      const auto qbar = attnlab::topk_gate::causal_query_means(q.detach(), tile_);
      const auto kbar = attnlab::topk_gate::pool(k.detach(), 2, tile_, /*mean=*/true);
      return torch::matmul(torch::matmul(qbar, gate_q_.to(q.scalar_type())),
                           torch::matmul(kbar, gate_k_.to(q.scalar_type())).transpose(-2, -1)) * scale;
    }
    torch::NoGradGuard no_grad;
    if (gate_ == "oracle") return attnlab::topk_gate::block_mass(q, k, tile_, scale);
    if (gate_ == "random") {
      const std::int64_t nq = (q.size(2) + tile_ - 1) / tile_;
      // Seeded afresh: the same tiles at every call (a fixed random control, not fresh noise).
      auto generator = attnlab::seeded_generator(seed_);
      return at::rand({q.size(0), q.size(1), nq, nq}, generator, q.options().dtype(at::kFloat));
    }
    return attnlab::kernels::pooled_block_scores(q, k, tile_, scale);
  }

  // The executed tiles (mask_cost over the last block list) plus the gate: pooling and the
  // [nq, nq] score product (mean, learned: + the projections), or the dense T x T scores
  // and softmax (oracle); the learned gate's training KL is not counted.
  attnlab::Cost block_cost(const attnlab::AttentionShape& shape) const {
    auto cost = attnlab::mask_cost(layouts(shape.seq_len), shape);
    const double T = static_cast<double>(shape.seq_len), D = static_cast<double>(shape.head_dim);
    const double nq = std::ceil(T / static_cast<double>(tile_)), BH = static_cast<double>(shape.batch * shape.heads);
    double gate = BH * (2.0 * T * D + 2.0 * nq * nq * D);
    if (gate_ == "learned") gate += BH * 4.0 * nq * D * D;
    if (gate_ == "oracle") gate = BH * 2.0 * T * T * D;
    if (gate_ == "random") gate = 0.0;
    cost.forward_flops += gate;
    return cost;
  }

  // Units kept per row, own unit included.
  std::int64_t budget(std::int64_t T) const {
    const std::int64_t unit = granularity_ == "query_block" ? tile_ : block_;
    const std::int64_t units = granularity_ == "token" ? T : (T + unit - 1) / unit;
    if (k_ > 0) return k_;
    return std::max<std::int64_t>(1, static_cast<std::int64_t>(std::ceil(fraction_ * static_cast<double>(units))));
  }

  // Soft selection weights and hard selection, both per (t, s) key: [B, H, T, T].
  // expand = false: per unit [B, H, T, U] (key blocks for granularity = block), else per key.
  std::pair<torch::Tensor, torch::Tensor> selection(const torch::Tensor& q, const torch::Tensor& k, double scale,
                                                    bool expand = true) {
    const std::int64_t T = q.size(2);
    const auto long_opts = torch::TensorOptions().dtype(torch::kLong).device(q.device());
    const auto pos = torch::arange(T, long_opts);
    const auto gained_q = q * torch::exp(log_gain_.to(q.scalar_type())).unsqueeze(0).unsqueeze(2);

    torch::Tensor unit_keys, unit_of_key;  // keys scored per unit, and the unit of every key s
    if (granularity_ == "token") {
      unit_keys = k;
      unit_of_key = pos;
    } else {
      const std::int64_t nb = (T + block_ - 1) / block_;
      unit_of_key = torch::div(pos, block_, "floor");
      const auto padded = at::constant_pad_nd(k, {0, 0, 0, nb * block_ - T});
      const auto counts = torch::clamp_max(T - torch::arange(nb, long_opts) * block_, block_).to(k.scalar_type());
      unit_keys = padded.view({k.size(0), k.size(1), nb, block_, k.size(3)}).sum(3) / counts.unsqueeze(-1);
    }
    const auto own_unit = unit_of_key;  // a query's own unit: its own token / its own block
    const auto r = torch::matmul(gained_q, unit_keys.transpose(-2, -1)) * scale;  // [B, H, T, U]
    const std::int64_t U = r.size(-1);
    const auto units = torch::arange(U, long_opts);
    const auto competing = units.unsqueeze(0) < own_unit.unsqueeze(1);  // [T, U]: strictly past units
    const auto is_own = units.unsqueeze(0) == own_unit.unsqueeze(1);

    const std::int64_t n = budget(T) - 1;
    torch::Tensor tau;
    if (n <= 0) {
      tau = torch::full({1}, INFINITY, r.options());
    } else if (n >= U) {
      tau = torch::full({1}, -INFINITY, r.options());
    } else {
      const auto ranked = std::get<0>(r.masked_fill(competing.logical_not(), -INFINITY).topk(std::min(n + 1, U), -1));
      tau = 0.5 * (ranked.select(-1, n - 1) + ranked.select(-1, n)).unsqueeze(-1);
    }
    auto soft = torch::sigmoid((r - tau) / temperature_).masked_fill(is_own, 1.0);
    auto hard_sel = (r >= tau).logical_or(is_own);
    if (granularity_ == "block" && expand) {
      soft = soft.index_select(-1, unit_of_key);
      hard_sel = hard_sel.index_select(-1, unit_of_key);
    }
    return {soft, hard_sel};
  }

  torch::Tensor block_sparse(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             const torch::Tensor& allowed, double scale) const {
    const auto cpu = allowed.cpu();
    attnlab::kernels::LayoutSet layouts;
    for (std::int64_t b = 0; b < cpu.size(0); ++b)
      for (std::int64_t h = 0; h < cpu.size(1); ++h)
        layouts.push_back(std::make_shared<const attnlab::kernels::BlockLayout>(
            attnlab::kernels::BlockLayout::from_dense(cpu[b][h].contiguous(), tile_)));
    return attnlab::kernels::block_sparse_attention(q, k, v, layouts, scale);
  }

  std::string granularity_;
  std::int64_t block_, k_;
  double fraction_, temperature_start_, temperature_final_, temperature_;
  bool straight_through_;
  double eps_;
  std::string execution_;
  std::int64_t tile_;
  std::string gate_;
  std::int64_t sink_blocks_;
  std::uint64_t seed_;                               // gate = random (seed, layer)
  torch::Tensor gate_q_, gate_k_, gate_loss_;        // gate = learned
  attnlab::kernels::BlockSelection last_selection_;  // query_block: the last forward's
  std::int64_t last_T_ = 0;
  double last_select_ms_ = 0.0;
  torch::Tensor log_gain_, last_selected_;
  attnlab::kernels::LayoutSet last_layouts_;  // hard MoBA path: the last forward's layouts
};

}  // namespace

ATTNLAB_PLUGIN(TopkAttention, "topk", "2.2.1",
               "top-k key selection: per query (token or key-block/MoBA, differentiable), or key tiles per query tile "
               "on the block-selection kernel (gate mean | learned | oracle | random), causal")
