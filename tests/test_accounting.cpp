// Honest accounting: every built-in backend reports the density it executed. The CPU kernel
// counts the tiles it computes (kernels::forward_tiles_computed); hard mode must have run
// exactly its layouts' tiles, a backend that ran nothing on the kernel must report dense cost,
// and the multi-pass soft modes (gating, blend's mixture) run each candidate's tiles, no more.
#include <attnlab/backend.hpp>
#include <attnlab/kernels/attention.hpp>
#include <attnlab/masks.hpp>

#include "catch.hpp"

#include "support.hpp"

#include "check/contract.hpp"

#include <cmath>
#include <map>
#include <string>
#include <vector>

namespace {

using attnlab::test::registry;
using Given = std::map<std::string, attnlab::ParamValue>;

attnlab::check::ContractOptions odd_sizes() {
  attnlab::check::ContractOptions o;
  o.batch = 2, o.heads = 3, o.head_dim = 19;
  return o;
}

std::shared_ptr<attnlab::AttentionBackend> make(const std::string& name, const Given& given, std::int64_t T, bool hard) {
  attnlab::BackendInit init;
  init.n_heads = 3;
  init.head_dim = 19;
  init.max_seq_len = T;
  auto backend = registry().create(name, init, given);
  backend->set_hard(hard);
  return backend;
}

std::int64_t nnz_of(const std::string& expression, std::int64_t T, std::int64_t tile) {
  return attnlab::masks::block_layout(expression, T, tile)->nnz();
}

// Masked T x T math that claims the sparse layout of its mask: what the check must refuse.
class Liar : public attnlab::AttentionBackend {
 public:
  Liar() : AttentionBackend("Liar") {}
  torch::Tensor forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) override {
    const auto allowed = attnlab::masks::dense("window:8", q.size(2));
    return attnlab::kernels::reference_attention(q, k, v, allowed, 1.0 / std::sqrt(double(q.size(-1))));
  }
  attnlab::kernels::LayoutSet layouts(std::int64_t T) const override {
    return {attnlab::masks::block_layout("window:8", T, 16)};
  }
};

// On the kernel, but over more tiles than it declares.
class Overspender : public Liar {
 public:
  torch::Tensor forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) override {
    return attnlab::kernels::block_sparse_attention(q, k, v, {attnlab::masks::block_layout("causal", q.size(2), 16)},
                                                    1.0 / std::sqrt(double(q.size(-1))));
  }
};

}  // namespace

TEST_CASE("the kernel counts one tile per layout entry and batch-head slice", "[accounting]") {
  const std::int64_t B = 2, H = 3, T = 130, D = 19;
  const auto q = torch::randn({B, H, T, D}), k = torch::randn({B, H, T, D}), v = torch::randn({B, H, T, D});
  attnlab::kernels::reset_forward_tiles_computed();
  attnlab::kernels::block_sparse_attention(q, k, v, {attnlab::masks::block_layout("sink:4|window:20", T, 16)}, 0.2);
  CHECK(attnlab::kernels::forward_tiles_computed() == B * H * nnz_of("sink:4|window:20", T, 16));
}

TEST_CASE("every built-in backend in hard mode runs the density it reports", "[accounting]") {
  struct Case {
    std::string name;
    Given given;
    bool on_kernel;  // whether hard mode must run tiles on the kernel (else: dense cost reported)
  };
  const std::vector<Case> cases = {
      {"dense", {{"execution", std::string("block_sparse")}, {"tile", std::int64_t(16)}}, true},
      {"dense", {{"execution", std::string("math")}}, false},
      {"dense", {}, false},
      {"masks", {{"pattern", std::string("sink:2|window:5")}, {"execution", std::string("block_sparse")}, {"tile", std::int64_t(16)}}, true},
      {"masks", {{"pattern", std::string("sink:2|window:5")}}, false},
      {"blend", {{"candidates", std::string("window:4,stride:5,sink:2")}, {"execution", std::string("block_sparse")}, {"tile", std::int64_t(16)}}, true},
      {"blend", {{"candidates", std::string("window:4,stride:5,sink:2")}}, false},
      {"gating", {{"candidates", std::string("causal,window:20,sink:2|window:8")}, {"block", std::int64_t(16)}, {"init_scale", 0.5}}, true},
      {"gating", {{"execution", std::string("masked")}, {"granularity", std::string("query")}}, false},
      {"topk", {{"granularity", std::string("block")}, {"block", std::int64_t(16)}, {"k", std::int64_t(2)},
                {"execution", std::string("block_sparse")}, {"tile", std::int64_t(16)}}, true},
      {"topk", {{"k", std::int64_t(5)}}, false},
  };
  for (const auto& c : cases) {
    for (const std::int64_t T : {37, 130}) {
      std::string given;
      for (const auto& [key, value] : c.given) given += " " + key + "=" + attnlab::to_string(value);
      INFO(c.name << given << " T = " << T);
      auto backend = make(c.name, c.given, T, /*hard=*/true);
      CHECK(attnlab::check::accounting_problem(*backend, odd_sizes(), T) == "");
      // The comparison that ran was the one this case is about.
      CHECK((attnlab::kernels::forward_tiles_computed() > 0) == c.on_kernel);
    }
  }
}

TEST_CASE("the accounting check fails masked math that reports a sparse layout, and extra tiles", "[accounting]") {
  Liar liar;
  CHECK_THAT(attnlab::check::accounting_problem(liar, odd_sizes(), 130), Catch::Contains("masked math must report dense cost"));
  Overspender spender;
  CHECK_THAT(attnlab::check::accounting_problem(spender, odd_sizes(), 130), Catch::Contains("layouts() declare"));
}

TEST_CASE("soft gating and blend's mixture run every candidate's tiles and report them", "[accounting]") {
  const std::int64_t T = 130, tile = 16;
  const std::vector<std::string> candidates = {"causal", "window:20", "sink:2|window:8"};
  std::int64_t per_slice = 0;
  double element = 0;
  for (const auto& c : candidates) {
    per_slice += nnz_of(c, T, tile);
    element += attnlab::masks::density(c, T, tile).element;
  }
  const Given gating{{"candidates", std::string("causal,window:20,sink:2|window:8")}, {"block", tile}};
  const Given blend{{"candidates", std::string("causal,window:20,sink:2|window:8")}, {"soft", std::string("mixture")},
                    {"mixing", std::string("normalized")}, {"regularizer", std::string("expected_cost")}, {"tile", tile}};
  for (const auto& [name, given] : std::vector<std::pair<std::string, Given>>{{"gating", gating}, {"blend", blend}}) {
    INFO(name);
    auto backend = make(name, given, T, /*hard=*/false);
    const auto q = torch::randn({2, 3, T, 19}), k = torch::randn({2, 3, T, 19}), v = torch::randn({2, 3, T, 19});
    attnlab::kernels::reset_forward_tiles_computed();
    backend->forward(q, k, v);
    CHECK(attnlab::kernels::forward_tiles_computed() == 2 * 3 * per_slice);
    // Its cost claims every pass too (the bench's flops/computed), more than the union's.
    const attnlab::AttentionShape shape{2, 3, T, 19};
    CHECK(backend->cost(shape).forward_flops == Approx(4.0 * 19 * 2 * 3 * element * T * T));
    CHECK(element > attnlab::density_of(*backend, T).element);
  }
}
