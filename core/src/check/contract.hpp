#pragma once
// The backend contract, checked on any plugin the registry can load (in-tree or not), as
// ggml's test-backend-ops does for its backends: `attnlab check BACKEND`, and tests/ for the
// in-tree ones. Each check runs in soft mode and in hard mode (set_hard(true)):
//
//   shapes      out has q's shape and dtype, for float32 and float64 inputs
//   finite      out, the gradients of q, k, v and of every parameter are finite
//   causal      perturbing the tokens from T/2 on leaves every earlier output unchanged
//   seeded      two backends built with one seed give identical outputs
//   reference   hard mode, float64: out and the q, k, v gradients equal the naive reference
//               attention over layouts()'s element masks (n/a where exact_in_hard_mode() is
//               false, or in soft mode)
//   kernel      hard mode, float32: out equals attnlab's block-sparse kernel over layouts()
//   accounting  hard mode: the tiles the CPU kernel computed (kernels::forward_tiles_computed)
//               equal layouts()'s, and executed_density() is theirs; a backend that ran no
//               tile on the kernel must report at least the causal density (dense cost)
//
// on odd sizes (T = 1, 37 and 130 by default, B = 2, H = 3, D = 19).
#include <attnlab/registry.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace attnlab::check {

struct ContractOptions {
  std::map<std::string, ParamValue> params;  // the backend's parameters (defaults elsewhere)
  std::vector<std::int64_t> seq_lens = {1, 37, 130};
  std::int64_t batch = 2, heads = 3, head_dim = 19;
  std::uint64_t seed = 0;
};

struct CheckResult {
  std::string check, mode;  // e.g. "causal", "hard"
  enum class Outcome { Pass, Fail, NotApplicable } outcome = Outcome::Pass;
  std::string detail;       // the first failure (T, the measured difference), or why n/a
};

std::vector<CheckResult> run_contract(const PluginRegistry& registry, const std::string& backend,
                                      const ContractOptions& options = {});
bool all_passed(const std::vector<CheckResult>& results);  // n/a counts as passed

// The accounting check on one backend as it is (mode included) at T, on random float32 inputs
// of o's B, H, D: "" when it holds, else what disagreed. Resets kernels' tile counter.
std::string accounting_problem(AttentionBackend& backend, const ContractOptions& o, std::int64_t T);

}  // namespace attnlab::check
