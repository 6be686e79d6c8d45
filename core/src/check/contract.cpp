// The backend contract suite (contract.hpp). It calls forward directly, the one host code that
// does: it tests what the plugin itself returns, which attnlab::attend (the door everything else
// uses) would refuse before the check could report it.
#include "check/contract.hpp"

#include <attnlab/backend.hpp>
#include <attnlab/kernels/attention.hpp>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/autograd.h>

#include <cmath>
#include <functional>
#include <sstream>

namespace attnlab::check {
namespace {

using Outcome = CheckResult::Outcome;

struct Qkv {
  at::Tensor q, k, v;
};

Qkv random_qkv(const ContractOptions& o, std::int64_t T, at::ScalarType dtype, std::uint64_t seed) {
  at::manual_seed(seed);
  const auto options = at::TensorOptions().dtype(dtype);
  return {at::randn({o.batch, o.heads, T, o.head_dim}, options), at::randn({o.batch, o.heads, T, o.head_dim}, options),
          at::randn({o.batch, o.heads, T, o.head_dim}, options)};
}

double max_diff(const at::Tensor& a, const at::Tensor& b) {
  return a.numel() == 0 ? 0.0 : (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

// A layout set as bool [B, H, T, S] element masks (broadcast over what it shares).
at::Tensor dense_masks(const kernels::LayoutSet& layouts, std::int64_t B, std::int64_t H) {
  std::vector<at::Tensor> masks;
  for (const auto& l : layouts) masks.push_back(l->to_dense());
  at::Tensor stacked = at::stack(masks);  // [n, T, S]
  const auto n = static_cast<std::int64_t>(layouts.size());
  if (n == 1) return stacked.view({1, 1, stacked.size(1), stacked.size(2)});
  if (n == H && n != B * H) return stacked.view({1, H, stacked.size(1), stacked.size(2)});
  return stacked.view({B, H, stacked.size(1), stacked.size(2)});
}

}  // namespace

// Hard mode runs what it reports: the tiles the CPU kernel computed in one forward equal
// the layouts' (every (b, h) counted), and a backend that ran none of its work on the kernel
// (LibTorch attention, masked T x T math) must report at least the causal density, not a
// sparse layout it never exploited.
std::string accounting_problem(AttentionBackend& backend, const ContractOptions& o, std::int64_t T) {
  c10::NoGradGuard no_grad;
  const auto x = random_qkv(o, T, at::kFloat, 7);
  kernels::reset_forward_tiles_computed();
  backend.forward(x.q, x.k, x.v);
  const std::int64_t ran = kernels::forward_tiles_computed();
  const auto layouts = backend.layouts(T);
  const AttentionShape shape{o.batch, o.heads, T, o.head_dim};
  const Density reported = executed_density(backend, shape);
  std::ostringstream s;
  if (ran == 0) {
    const double causal = causal_density(T, 64).element;
    if (reported.element + 1e-9 < causal)
      s << "no tile ran on the kernel, yet it reports element density " << reported.element << " < causal's "
        << causal << " (masked math must report dense cost)";
    return s.str();
  }
  std::int64_t declared = 0;
  for (const auto& l : layouts) declared += l->nnz();
  declared = declared * o.batch * o.heads / static_cast<std::int64_t>(layouts.size());
  const Density claimed = density_of(layouts);
  if (ran != declared)
    s << "the kernel computed " << ran << " tiles, layouts() declare " << declared;
  else if (std::abs(reported.block - claimed.block) > 1e-9)
    s << "reported block density " << reported.block << " is not the executed layouts' " << claimed.block;
  return s.str();
}

namespace {

class Contract {
 public:
  Contract(const PluginRegistry& registry, std::string backend, const ContractOptions& options)
      : registry_(registry), backend_(std::move(backend)), o_(options) {}

  std::shared_ptr<AttentionBackend> make(bool hard, std::int64_t max_seq_len) const {
    BackendInit init;
    init.n_heads = o_.heads;
    init.head_dim = o_.head_dim;
    init.max_seq_len = max_seq_len;
    init.seed = o_.seed;
    auto b = registry_.create(backend_, init, o_.params);
    b->set_hard(hard);
    return b;
  }

  // Runs `body` for every T; the first failure message wins.
  CheckResult each_length(const std::string& name, bool hard,
                          const std::function<std::string(std::int64_t T)>& body) const {
    CheckResult r{name, hard ? "hard" : "soft", Outcome::Pass, ""};
    for (const auto T : o_.seq_lens) {
      try {
        const std::string problem = body(T);
        if (!problem.empty()) {
          r.outcome = Outcome::Fail;
          r.detail = "T = " + std::to_string(T) + ": " + problem;
          return r;
        }
      } catch (const std::exception& e) {
        std::string what = e.what();
        if (auto cut = what.find("\nException raised from"); cut != std::string::npos) what.resize(cut);
        r.outcome = Outcome::Fail;
        r.detail = "T = " + std::to_string(T) + ": threw: " + what;
        return r;
      }
    }
    return r;
  }

  // Every check in soft mode, then in hard mode; a hard-mode-only check reports itself not
  // applicable in soft mode, as the exact ones do for a backend not exact in hard mode.
  std::vector<CheckResult> run() const {
    std::vector<CheckResult> out;
    for (const bool hard : {false, true}) {
      for (const auto& [name, body] : {std::pair{"shapes", &Contract::shapes}, std::pair{"finite", &Contract::finite},
                                       std::pair{"causal", &Contract::causal}, std::pair{"seeded", &Contract::seeded}})
        out.push_back(check(name, hard, body));
      if (!hard) {
        out.push_back({"reference", "soft", Outcome::NotApplicable, "hard mode only (soft modes may bias the scores)"});
        out.push_back({"kernel", "soft", Outcome::NotApplicable, "hard mode only"});
        out.push_back({"accounting", "soft", Outcome::NotApplicable, "hard mode only (a soft mixture runs several passes)"});
        continue;
      }
      if (!make(true, max_T())->exact_in_hard_mode()) {
        out.push_back(check("accounting", hard, &Contract::accounting));
        out.push_back({"reference", "hard", Outcome::NotApplicable, "exact_in_hard_mode() is false for these parameters"});
        out.push_back({"kernel", "hard", Outcome::NotApplicable, "exact_in_hard_mode() is false for these parameters"});
        continue;
      }
      out.push_back(check("reference", hard, &Contract::reference));
      out.push_back(check("accounting", hard, &Contract::accounting));
      out.push_back(check("kernel", hard, &Contract::kernel));
    }
    return out;
  }

 private:
  // One check: a problem at T in the given mode, or "" when there is none.
  using Check = std::string (Contract::*)(bool hard, std::int64_t T) const;

  CheckResult check(const std::string& name, bool hard, Check body) const {
    return each_length(name, hard, [&](std::int64_t T) { return (this->*body)(hard, T); });
  }

  // Every backend is built for the longest T checked.
  std::int64_t max_T() const { return *std::max_element(o_.seq_lens.begin(), o_.seq_lens.end()); }

  std::string shapes(bool hard, std::int64_t T) const {
    c10::NoGradGuard no_grad;
    for (const auto dtype : {at::kFloat, at::kDouble}) {
      const auto x = random_qkv(o_, T, dtype, 1);
      const auto y = make(hard, max_T())->forward(x.q, x.k, x.v);
      if (y.sizes() != x.q.sizes()) return "out has shape " + c10::str(y.sizes()) + ", not q's";
      if (y.scalar_type() != dtype) return std::string("out is ") + c10::toString(y.scalar_type()) + " for " +
                                           c10::toString(dtype) + " inputs";
    }
    return "";
  }

  std::string finite(bool hard, std::int64_t T) const {
    auto backend = make(hard, max_T());
    auto x = random_qkv(o_, T, at::kFloat, 2);
    for (auto* t : {&x.q, &x.k, &x.v}) t->requires_grad_(true);
    const auto y = backend->forward(x.q, x.k, x.v);
    if (!at::isfinite(y).all().item<bool>()) return "out has non-finite values";
    auto loss = (y * at::randn_like(y)).sum();
    const auto reg = backend->regularizer();
    if (reg.defined()) loss = loss + reg;
    loss.backward();
    for (const auto* t : {&x.q, &x.k, &x.v})
      if (t->grad().defined() && !at::isfinite(t->grad()).all().item<bool>()) return "an input gradient is not finite";
    for (const auto& p : backend->parameters())
      if (p.grad().defined() && !at::isfinite(p.grad()).all().item<bool>()) return "a parameter gradient is not finite";
    return "";
  }

  std::string causal(bool hard, std::int64_t T) const {
    if (T < 2) return "";
    c10::NoGradGuard no_grad;
    const std::int64_t cut = T / 2;
    auto backend = make(hard, max_T());
    const auto x = random_qkv(o_, T, at::kDouble, 3);
    const auto before = backend->forward(x.q, x.k, x.v);
    auto changed = random_qkv(o_, T, at::kDouble, 3);
    at::manual_seed(99);
    for (auto* t : {&changed.q, &changed.k, &changed.v}) t->narrow(2, cut, T - cut).normal_();
    const auto after = backend->forward(changed.q, changed.k, changed.v);
    const double moved = max_diff(before.narrow(2, 0, cut), after.narrow(2, 0, cut));
    if (moved > 1e-9) {
      std::ostringstream s;
      s << "outputs before t = " << cut << " moved by " << moved << " when later tokens changed";
      return s.str();
    }
    return "";
  }

  std::string seeded(bool hard, std::int64_t T) const {
    c10::NoGradGuard no_grad;
    const auto x = random_qkv(o_, T, at::kFloat, 4);
    const auto a = make(hard, max_T())->forward(x.q, x.k, x.v), b = make(hard, max_T())->forward(x.q, x.k, x.v);
    if (!at::equal(a, b)) return "two backends built with one seed differ by " + std::to_string(max_diff(a, b));
    return "";
  }

  // Hard mode: out and its gradients are the float64 reference's over layouts()'s masks.
  std::string reference(bool, std::int64_t T) const {
    auto backend = make(true, max_T());
    auto x = random_qkv(o_, T, at::kDouble, 5);
    for (auto* t : {&x.q, &x.k, &x.v}) t->requires_grad_(true);
    const auto y = backend->forward(x.q, x.k, x.v);
    const auto allowed = dense_masks(backend->layouts(T), o_.batch, o_.heads);
    const auto ref = kernels::reference_attention(x.q, x.k, x.v, allowed, kernels::softmax_scale(o_.head_dim));
    const double d_out = max_diff(y, ref);
    if (d_out > 1e-8) return "out differs from the reference over layouts() by " + std::to_string(d_out);
    const auto g = at::randn_like(ref);
    const auto got = torch::autograd::grad({y}, {x.q, x.k, x.v}, {g}, /*retain_graph=*/false, false, true);
    const auto want = torch::autograd::grad({ref}, {x.q, x.k, x.v}, {g}, false, false, true);
    for (int i = 0; i < 3; ++i) {
      const at::Tensor a = got[i].defined() ? got[i] : at::zeros_like(want[i]);
      const double d = max_diff(a, want[i]);
      if (d > 1e-7) return std::string("d") + "qkv"[i] + " differs from the reference's by " + std::to_string(d);
    }
    return "";
  }

  // Hard mode: out is the block-sparse kernel's over layouts().
  std::string kernel(bool, std::int64_t T) const {
    c10::NoGradGuard no_grad;
    auto backend = make(true, max_T());
    const auto x = random_qkv(o_, T, at::kFloat, 6);
    const auto y = backend->forward(x.q, x.k, x.v);
    const auto k = kernels::block_sparse_attention(x.q, x.k, x.v, backend->layouts(T), kernels::softmax_scale(o_.head_dim));
    const double d = max_diff(y, k);
    if (d > 1e-4) return "out differs from the block-sparse kernel over layouts() by " + std::to_string(d);
    return "";
  }

  std::string accounting(bool, std::int64_t T) const {
    auto backend = make(true, T);
    return accounting_problem(*backend, o_, T);
  }

  const PluginRegistry& registry_;
  std::string backend_;
  ContractOptions o_;
};

}  // namespace

std::vector<CheckResult> run_contract(const PluginRegistry& registry, const std::string& backend,
                                      const ContractOptions& options) {
  return Contract(registry, backend, options).run();
}

bool all_passed(const std::vector<CheckResult>& results) {
  for (const auto& r : results)
    if (r.outcome == CheckResult::Outcome::Fail) return false;
  return true;
}

}  // namespace attnlab::check
