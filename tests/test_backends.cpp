// Every discovered backend against the contract (shape, causality, finite values and
// gradients, determinism), then the family's own identities: blend/masks/topk reduce to dense,
// float64 finite differences for every learnable parameter, the L1 regularizer drives blend
// weights to zero, blend's hard mode is the masks backend on the surviving union, and
// out-of-range parameters are refused by name.
#include <attnlab/head_search.hpp>
#include <attnlab/kernels/attention.hpp>
#include <attnlab/attend.hpp>
#include <attnlab/masks.hpp>
#include <attnlab/registry.hpp>

#include <torch/csrc/autograd/autograd.h>
#include <torch/optim/adam.h>
#include "catch.hpp"

#include "support.hpp"

#include "check/contract.hpp"

#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace {

using attnlab::test::registry;

using Given = std::map<std::string, attnlab::ParamValue>;


struct Shape {
  std::int64_t B = 2, H = 3, T = 37, D = 8;
};

std::shared_ptr<attnlab::AttentionBackend> make(const std::string& name, const Given& given, const Shape& shape,
                                                std::uint64_t seed = 0) {
  attnlab::BackendInit init;
  init.n_heads = shape.H;
  init.head_dim = shape.D;
  init.max_seq_len = shape.T;
  init.seed = seed;
  return registry().create(name, init, given);
}

std::vector<torch::Tensor> random_qkv(const Shape& s, std::uint64_t seed, torch::Dtype dtype = torch::kFloat) {
  torch::manual_seed(seed);
  std::vector<torch::Tensor> out;
  for (int i = 0; i < 3; ++i) out.push_back(torch::randn({s.B, s.H, s.T, s.D}, torch::TensorOptions().dtype(dtype)));
  return out;
}

// Parameter sets worth running for each backend besides its defaults.
std::vector<Given> variants(const std::string& name) {
  std::vector<Given> out{{}};
  if (name == "dense") out = {{{"execution", std::string("math")}}, {{"execution", std::string("block_sparse")}, {"tile", std::int64_t(16)}}, {}};
  if (name == "masks") {
    out.push_back({{"pattern", std::string("sink:2|window:5|stride:7:20")}});
    out.push_back({{"pattern", std::string("sink:2|window:5")}, {"execution", std::string("block_sparse")}, {"tile", std::int64_t(16)}});
  }
  if (name == "blend") {
    out.push_back({{"candidates", std::string("window:4,stride:5,sink:2")}, {"activation", std::string("softplus")},
                   {"execution", std::string("block_sparse")}, {"tile", std::int64_t(16)}});
    const Given normalized{{"candidates", std::string("causal,window:4,sink:2|window:3")}, {"mixing", std::string("normalized")},
                           {"regularizer", std::string("expected_cost")}, {"execution", std::string("block_sparse")},
                           {"tile", std::int64_t(16)}};
    for (const char* extra : {"soft=mixture", "soft=masked", "selection=st_gumbel"}) {
      Given g = normalized;
      const std::string e = extra;
      g[e.substr(0, e.find('='))] = e.substr(e.find('=') + 1);
      out.push_back(g);
    }
  }
  if (name == "gating") {
    out.push_back({{"gate", std::string("sigmoid")}, {"granularity", std::string("block")}, {"block", std::int64_t(8)},
                   {"execution", std::string("masked")}});
    out.push_back({{"granularity", std::string("query")}, {"execution", std::string("masked")}});
    out.push_back({{"candidates", std::string("causal,window:20,sink:2|window:8")}, {"block", std::int64_t(16)}, {"init_scale", 0.5}});
  }
  if (name == "topk") {
    out.push_back({{"k", std::int64_t(5)}, {"straight_through", true}});
    out.push_back({{"granularity", std::string("block")}, {"block", std::int64_t(8)}, {"k", std::int64_t(2)},
                   {"execution", std::string("block_sparse")}, {"tile", std::int64_t(16)}});
    // MoBA on the kernel: blocks are the kernel's tiles, the layout built from the block choice.
    out.push_back({{"granularity", std::string("block")}, {"block", std::int64_t(16)}, {"k", std::int64_t(2)},
                   {"execution", std::string("block_sparse")}, {"tile", std::int64_t(16)}});
    // Tiles per query tile on the block-selection kernel, every deployable gate (oracle reads
    // its tile's later queries: not causal by design, an upper bound only).
    for (const char* gate : {"mean", "learned", "random"})
      out.push_back({{"granularity", std::string("query_block")}, {"gate", std::string(gate)}, {"k", std::int64_t(3)},
                     {"sink_blocks", std::int64_t(1)}, {"execution", std::string("block_sparse")}, {"tile", std::int64_t(16)}});
  }
  return out;
}

std::string describe(const std::string& name, const Given& given) {
  std::string out = name;
  for (const auto& [key, value] : given) out += " " + key + "=" + attnlab::to_string(value);
  return out;
}

// Central finite differences of loss() against autograd for every entry of `parameter`.
void require_gradient_matches(torch::Tensor parameter, const std::function<torch::Tensor()>& loss, const std::string& what) {
  if (parameter.grad().defined()) parameter.mutable_grad().zero_();
  loss().backward();
  const torch::Tensor analytic = parameter.grad().clone();
  torch::NoGradGuard no_grad;
  const double h = 1e-6;
  auto flat = parameter.view({-1});
  double max_error = 0.0;
  std::int64_t violations = 0;  // entries outside |numeric - analytic| <= 1e-6 + 1e-5 |numeric|
  for (std::int64_t i = 0; i < flat.numel(); ++i) {
    const double original = flat[i].item<double>();
    flat[i].fill_(original + h);
    const double up = loss().item<double>();
    flat[i].fill_(original - h);
    const double down = loss().item<double>();
    flat[i].fill_(original);
    const double numeric = (up - down) / (2 * h);
    const double error = std::abs(numeric - analytic.view({-1})[i].item<double>());
    max_error = std::max(max_error, error);
    violations += error > 1e-6 + 1e-5 * std::abs(numeric);
  }
  INFO(what << ": " << violations << " of " << flat.numel() << " entries off, max |numeric - analytic| " << max_error);
  REQUIRE(violations == 0);
  REQUIRE(analytic.abs().sum().item<double>() > 0);  // the check must actually exercise something
}

}  // namespace

TEST_CASE("the five attention backends are discovered", "[backends]") {
  INFO("problems: " << registry().problems().size());
  for (const char* name : {"dense", "masks", "blend", "gating", "topk"}) {
    INFO(name);
    REQUIRE(registry().find(name) != nullptr);
  }
}

TEST_CASE("every backend and variant passes the contract that attnlab check runs", "[backends][generic]") {
  // check/contract.hpp: shapes and dtypes, finite values and gradients, causality, seeded
  // determinism, and in hard mode the float64 reference (values and gradients) and the
  // block-sparse kernel over the backend's own layouts(), on odd sizes.
  for (const auto& name : registry().names()) {
    for (const auto& given : variants(name)) {
      attnlab::check::ContractOptions options;
      options.params = given;
      for (const auto& r : attnlab::check::run_contract(registry(), name, options)) {
        INFO(describe(name, given) << ": " << r.check << " (" << r.mode << ") " << r.detail);
        CHECK(r.outcome != attnlab::check::CheckResult::Outcome::Fail);
      }
    }
  }
}

TEST_CASE("the contract fails a backend that is not the attention its layouts declare", "[backends][generic]") {
  // The fault test backend averages uniformly: causal and finite, but not softmax attention.
  const auto out = attnlab::test::shell("ATTNLAB_PLUGIN_PATH=" + std::string(ATTNLAB_BINARY_DIR) + "/test_plugins " +
                                        attnlab::test::cli() + " check fault");
  REQUIRE(out.status == 1);
  REQUIRE_THAT(out.out, Catch::Contains("contract: FAILED"));
  REQUIRE_THAT(out.out, Catch::Contains("reference   hard  FAIL"));
  REQUIRE_THAT(out.out, Catch::Contains("causal      hard  pass"));
}

TEST_CASE("blend with only the causal candidate equals dense, whatever the weights", "[backends][blend]") {
  const Shape shape;
  auto qkv = random_qkv(shape, 5);
  const auto dense = make("dense", {{"execution", std::string("math")}}, shape)->forward(qkv[0], qkv[1], qkv[2]);
  for (const char* activation : {"sigmoid", "softplus"}) {
    auto blend = make("blend", {{"candidates", std::string("causal")}, {"activation", std::string(activation)}}, shape);
    torch::NoGradGuard no_grad;
    blend->named_parameters()["logits"].normal_(0.0, 3.0);
    INFO(activation);
    REQUIRE(torch::allclose(blend->forward(qkv[0], qkv[1], qkv[2]), dense, 1e-5, 1e-6));
  }
}

TEST_CASE("masks with a window covering T equals dense", "[backends][masks]") {
  const Shape shape;
  auto qkv = random_qkv(shape, 6);
  const auto dense = make("dense", {{"execution", std::string("math")}}, shape)->forward(qkv[0], qkv[1], qkv[2]);
  for (const char* execution : {"reference", "block_sparse"}) {
    for (const char* pattern : {"window:37", "window:5000", "sink:4|window:40"}) {
      INFO(execution << " " << pattern);
      auto masks = make("masks", {{"pattern", std::string(pattern)}, {"execution", std::string(execution)}, {"tile", std::int64_t(16)}}, shape);
      REQUIRE(torch::allclose(masks->forward(qkv[0], qkv[1], qkv[2]), dense, 1e-5, 1e-6));
    }
  }
}

TEST_CASE("topk with a budget of T or more equals dense", "[backends][topk]") {
  const Shape shape;
  auto qkv = random_qkv(shape, 7);
  const auto dense = make("dense", {{"execution", std::string("math")}}, shape)->forward(qkv[0], qkv[1], qkv[2]);
  const std::vector<Given> cases = {{{"k", std::int64_t(37)}},
                                    {{"k", std::int64_t(1000)}, {"straight_through", true}},
                                    {{"fraction", 1.0}},
                                    {{"granularity", std::string("block")}, {"block", std::int64_t(8)}, {"k", std::int64_t(5)}}};
  for (const auto& given : cases) {
    for (bool hard : {false, true}) {
      INFO(describe("topk", given) << (hard ? " (hard)" : ""));
      auto topk = make("topk", given, shape);
      topk->set_hard(hard);
      REQUIRE(torch::allclose(topk->forward(qkv[0], qkv[1], qkv[2]), dense, 1e-5, 1e-6));
    }
  }
  // A real budget changes the result.
  auto sparse = make("topk", {{"k", std::int64_t(4)}}, shape);
  sparse->set_hard(true);
  REQUIRE_FALSE(torch::allclose(sparse->forward(qkv[0], qkv[1], qkv[2]), dense, 1e-3, 1e-3));
}

TEST_CASE("float64 finite differences match autograd for learnable parameters", "[backends][gradients]") {
  const Shape shape{1, 2, 9, 4};
  auto qkv = random_qkv(shape, 11, torch::kDouble);
  const torch::Tensor probe = torch::randn({shape.B, shape.H, shape.T, shape.D}, torch::TensorOptions().dtype(torch::kDouble));
  struct Case {
    std::string name;
    Given given;
  };
  const std::vector<Case> cases = {
      {"blend", {{"candidates", std::string("causal,window:3,stride:2,sink:1|window:2")}}},
      {"blend", {{"candidates", std::string("window:3,stride:2:6")}, {"activation", std::string("softplus")}, {"per", std::string("layer")}}},
      {"gating", {{"candidates", std::string("causal,window:3,stride:2")}, {"init_scale", 0.5}}},
      {"gating", {{"candidates", std::string("window:2,sink:2|window:3")}, {"gate", std::string("sigmoid")},
                  {"granularity", std::string("block")}, {"block", std::int64_t(4)}, {"init_scale", 0.5},
                  {"regularizer", std::string("entropy")}, {"execution", std::string("masked")}}},
      {"gating", {{"candidates", std::string("causal,window:3,stride:2")}, {"init_scale", 0.5}, {"block", std::int64_t(16)},
                  {"granularity", std::string("block")}, {"execution", std::string("masked")}}},
      {"blend", {{"candidates", std::string("causal,window:3,sink:1|window:2")}, {"mixing", std::string("normalized")},
                 {"regularizer", std::string("expected_cost")}, {"soft", std::string("mixture")}, {"tile", std::int64_t(16)}}},
      {"blend", {{"candidates", std::string("causal,window:3,sink:1|window:2")}, {"mixing", std::string("normalized")},
                 {"regularizer", std::string("expected_cost")}}},
      {"gating", {{"candidates", std::string("causal,block:3")}, {"regularizer", std::string("entropy")}, {"init_scale", 0.5}}},
      {"topk", {{"k", std::int64_t(3)}, {"temperature", 0.5}}},
      {"topk", {{"granularity", std::string("block")}, {"block", std::int64_t(2)}, {"k", std::int64_t(3)}, {"temperature", 0.3}}},
  };
  for (const auto& c : cases) {
    auto backend = make(c.name, c.given, shape, 2);
    backend->to(torch::kDouble);
    {
      torch::NoGradGuard no_grad;
      for (auto& p : backend->parameters()) p.add_(torch::randn_like(p) * 0.5);  // off the symmetric start
    }
    for (auto& [pname, p] : backend->named_parameters().pairs()) {
      auto loss = [&] { return (backend->forward(qkv[0], qkv[1], qkv[2]) * probe).sum(); };
      require_gradient_matches(p, loss, describe(c.name, c.given) + " parameter " + pname);
    }
    // Regularizers are differentiable too.
    auto reg_loss = [&] {
      backend->forward(qkv[0], qkv[1], qkv[2]);
      return backend->regularizer();
    };
    // (topk has none; expected_cost is linear in w with costs that are all 1 at T = 9, tile 16:
    // its gradient is checked by the lambda sweep below.)
    const auto reg = c.given.find("regularizer");
    if (c.name != "topk" && !(reg != c.given.end() && attnlab::to_string(reg->second) == "expected_cost"))
      for (auto& [pname, p] : backend->named_parameters().pairs())
        require_gradient_matches(p, reg_loss, describe(c.name, c.given) + " regularizer wrt " + pname);
  }
}

TEST_CASE("minimizing the blend regularizer alone drives the weights to zero", "[backends][blend]") {
  const Shape shape{1, 4, 64, 8};
  for (const char* kind : {"l1", "compute_l1"}) {
    for (const char* activation : {"sigmoid", "softplus"}) {
      INFO(kind << " " << activation);
      auto blend = make("blend", {{"regularizer", std::string(kind)}, {"activation", std::string(activation)},
                                  {"threshold_mode", std::string("absolute")}, {"init_noise", 0.0}}, shape);
      auto weight_sum = [&] {
        double total = 0;
        for (const auto& s : blend->statistics())
          if (s.name.rfind("weight/", 0) == 0) total += s.value;
        return total;
      };
      const double before = weight_sum();
      REQUIRE(before == Approx(0.5 * 4 * 4));  // init 0.5, 4 heads, 4 default candidates
      torch::optim::Adam adam(blend->parameters(), torch::optim::AdamOptions(0.1));
      for (int step = 0; step < 300; ++step) {
        adam.zero_grad();
        blend->regularizer().backward();
        adam.step();
      }
      for (const auto& s : blend->statistics())
        if (s.name.rfind("weight/", 0) == 0) REQUIRE(s.value < 0.02);
      // Nothing survives an absolute hard threshold ...
      blend->set_hard(true);
      REQUIRE(attnlab::density_of(*blend, 64).element == 0.0);
    }
  }
}

TEST_CASE("blend's relative hard threshold depends on weight ratios, not their scale", "[backends][blend]") {
  const Shape shape{1, 2, 40, 8};
  auto qkv = random_qkv(shape, 23);
  auto blend = make("blend", {{"candidates", std::string("window:3,stride:4,sink:2")}}, shape);  // relative, 0.1
  auto set_weights = [&](double scale) {
    torch::NoGradGuard no_grad;
    auto logits = blend->named_parameters()["logits"];
    const std::vector<double> w = {0.5, 0.02, 0.2};  // stride:4 is under 0.1 x the largest
    for (std::int64_t h = 0; h < shape.H; ++h)
      for (std::size_t c = 0; c < w.size(); ++c) logits[h][c].fill_(std::log(scale * w[c] / (1 - scale * w[c])));
  };
  auto masks = make("masks", {{"pattern", std::string("window:3|sink:2")}}, shape);
  const auto expected = masks->forward(qkv[0], qkv[1], qkv[2]);
  for (double scale : {1.0, 0.1}) {
    INFO("weights scaled by " << scale);
    set_weights(scale);
    blend->set_hard(false);
    const auto soft = blend->forward(qkv[0], qkv[1], qkv[2]);
    blend->set_hard(true);
    REQUIRE(torch::allclose(blend->forward(qkv[0], qkv[1], qkv[2]), expected, 1e-5, 1e-6));
    if (scale < 1) {
      // ... and the soft output hardly moves when every weight shrinks together (only eps
      // and the clamp at 1 see the scale): why L1 alone cannot select candidates here.
      set_weights(1.0);
      blend->set_hard(false);
      REQUIRE(torch::allclose(blend->forward(qkv[0], qkv[1], qkv[2]), soft, 1e-3, 1e-4));
    }
  }
}

TEST_CASE("blend hard mode runs exactly the masks backend on the surviving union", "[backends][blend]") {
  const Shape shape{2, 4, 45, 8};
  auto qkv = random_qkv(shape, 13);
  const std::vector<std::string> candidates = {"window:3", "stride:4", "sink:2", "block:16"};
  // Weights per head (rows): below the 0.1 threshold drops the candidate.
  // Head 3 keeps nothing: it attends to no key and outputs 0.
  const std::vector<std::vector<double>> w = {
      {0.9, 0.05, 0.5, 0.01}, {0.02, 0.3, 0.04, 0.7}, {0.9, 0.05, 0.5, 0.01}, {0.01, 0.02, 0.03, 0.04}};
  for (const char* execution : {"reference", "block_sparse"}) {
    INFO(execution);
    auto blend = make("blend", {{"candidates", std::string("window:3,stride:4,sink:2,block:16")},
                                {"execution", std::string(execution)}, {"tile", std::int64_t(16)},
                                {"threshold_mode", std::string("absolute")}},
                      shape);
    {
      torch::NoGradGuard no_grad;
      auto logits = blend->named_parameters()["logits"];
      for (std::int64_t h = 0; h < shape.H; ++h)
        for (std::size_t c = 0; c < candidates.size(); ++c) logits[h][c].fill_(std::log(w[h][c] / (1 - w[h][c])));
    }
    blend->set_hard(true);
    const auto out = blend->forward(qkv[0], qkv[1], qkv[2]);
    const std::vector<std::string> unions = {"window:3|sink:2", "stride:4|block:16", "window:3|sink:2"};
    REQUIRE(torch::equal(out.select(1, 3), torch::zeros_like(out.select(1, 3))));
    double element = 0;
    for (std::int64_t h = 0; h < 3; ++h) {
      auto masks = make("masks", {{"pattern", unions[h]}, {"execution", std::string(execution)}, {"tile", std::int64_t(16)}}, shape);
      const auto expected = masks->forward(qkv[0], qkv[1], qkv[2]).select(1, h);
      INFO("head " << h << " union " << unions[h]);
      REQUIRE(torch::allclose(out.select(1, h), expected, 1e-5, 1e-6));
      element += attnlab::masks::density(unions[h], shape.T, 16).element / shape.H;
    }
    REQUIRE(attnlab::density_of(*blend, shape.T).element == Approx(element));
  }
}

TEST_CASE("topk anneals its temperature and reports its selected density", "[backends][topk]") {
  const Shape shape;
  auto topk = make("topk", {{"temperature", 2.0}, {"temperature_final", 0.5}, {"k", std::int64_t(4)}}, shape);
  auto stat = [&](const std::string& name) {
    for (const auto& s : topk->statistics())
      if (s.name == name) return s.value;
    FAIL("no statistic " << name);
    return 0.0;
  };
  // The trainer calls on_step(step, total) for step = 0 .. total - 1: the last step must
  // reach temperature_final.
  topk->on_step(0, 101);
  CHECK(stat("temperature") == Approx(2.0));
  topk->on_step(50, 101);
  CHECK(stat("temperature") == Approx(1.25));
  topk->on_step(100, 101);
  CHECK(stat("temperature") == Approx(0.5));
  auto qkv = random_qkv(shape, 17);
  topk->forward(qkv[0], qkv[1], qkv[2]);
  // Row t keeps min(4, t + 1) keys (ties aside: continuous scores).
  double kept = 0;
  for (std::int64_t t = 0; t < shape.T; ++t) kept += std::min<std::int64_t>(4, t + 1);
  CHECK(stat("density/selected_element") == Approx(kept / double(shape.T * shape.T)));
  // Soft mode still computes every causal score; hard mode computes only the selection.
  CHECK(attnlab::density_of(*topk, shape.T).element == Approx(attnlab::causal_density(shape.T, 16).element));
  topk->set_hard(true);
  topk->forward(qkv[0], qkv[1], qkv[2]);
  CHECK(attnlab::density_of(*topk, shape.T).element == Approx(kept / double(shape.T * shape.T)));
}

TEST_CASE("gating reports gate usage per candidate summing to one for softmax gates", "[backends][gating]") {
  const Shape shape;
  auto gating = make("gating", {{"candidates", std::string("causal,window:4,sink:2")}}, shape);
  auto qkv = random_qkv(shape, 19);
  gating->forward(qkv[0], qkv[1], qkv[2]);
  double total = 0;
  int count = 0;
  for (const auto& s : gating->statistics())
    if (s.name.rfind("gate/", 0) == 0) total += s.value, ++count;
  CHECK(count == 3);
  CHECK(total == Approx(1.0));
  // One-hot gates on a single candidate reduce gating to that mask.
  auto single = make("gating", {{"candidates", std::string("sink:2|window:4")}}, shape);
  auto masks = make("masks", {{"pattern", std::string("sink:2|window:4")}}, shape);
  CHECK(torch::allclose(single->forward(qkv[0], qkv[1], qkv[2]), masks->forward(qkv[0], qkv[1], qkv[2]), 1e-5, 1e-6));
}

TEST_CASE("out-of-range and malformed parameters are refused, naming the key", "[backends][params]") {
  const Shape shape;
  const std::vector<std::tuple<std::string, std::string, attnlab::ParamValue>> cases = {
      {"masks", "tile", std::int64_t(8)},          {"masks", "execution", std::string("cuda")},
      {"masks", "pattern", std::string("windw:3")}, {"blend", "init", 0.0},
      {"blend", "threshold", 2.0},                  {"blend", "per", std::string("token")},
      {"blend", "candidates", std::string("causal,,window:0")},
      {"gating", "block", std::int64_t(0)},         {"gating", "gate", std::string("relu")},
      {"topk", "fraction", 0.0},                    {"topk", "temperature", -1.0},
      {"topk", "k", std::int64_t(-1)},              {"blend", "no_such_key", 1.0},
  };
  for (const auto& [backend, key, value] : cases) {
    INFO(backend << " " << key << " = " << attnlab::to_string(value));
    try {
      make(backend, {{key, value}}, shape);
      FAIL("accepted");
    } catch (const attnlab::ParamError& e) {
      CHECK(e.key == key);
      CHECK_THAT(std::string(e.what()), Catch::Contains(key));
    }
  }
  // And resolve_params alone refuses before anything is built.
  const auto* blend = registry().find("blend");
  REQUIRE(blend);
  CHECK_THROWS_AS(attnlab::resolve_params(blend->schema, {{"eps", 1.0}}), attnlab::ParamError);
}

TEST_CASE("blend soft = mixture runs per-candidate kernel passes and equals the masked soft mode", "[backends][blend]") {
  // With sum_k w_k M_k <= 1 everywhere (and eps -> 0) the clamp never bites, so the
  // normalizer-weighted mixture of block-sparse passes is the same attention, in value and
  // in the gradients of q, k, v and the blend weights.
  const Shape shape{2, 2, 97, 16};
  const std::string candidates = "window:5,stride:4,sink:2|block:16";
  const std::vector<std::vector<double>> w = {{0.3, 0.2, 0.4}, {0.1, 0.5, 0.3}};
  for (const auto dtype : {torch::kDouble, torch::kFloat}) {
    INFO((dtype == torch::kDouble ? "float64" : "float32"));
    const double tol = dtype == torch::kDouble ? 1e-9 : 1e-4;
    std::map<std::string, torch::Tensor> grads;
    torch::Tensor reference_out;
    for (const char* soft : {"masked", "mixture"}) {
      INFO(soft);
      auto blend = make("blend", {{"candidates", candidates}, {"soft", std::string(soft)}, {"eps", 1e-12},
                                  {"tile", std::int64_t(16)}}, shape);
      blend->to(dtype);
      {
        torch::NoGradGuard no_grad;
        auto logits = blend->named_parameters()["logits"];
        for (std::int64_t h = 0; h < shape.H; ++h)
          for (std::size_t c = 0; c < w[h].size(); ++c) logits[h][c].fill_(std::log(w[h][c] / (1 - w[h][c])));
      }
      auto qkv = random_qkv(shape, 29, dtype);
      for (auto& t : qkv) t.requires_grad_(true);
      auto out = blend->forward(qkv[0], qkv[1], qkv[2]);
      (out * out).sum().backward();
      if (std::string(soft) == "masked") {
        reference_out = out.detach();
        grads = {{"q", qkv[0].grad()}, {"k", qkv[1].grad()}, {"v", qkv[2].grad()},
                 {"logits", blend->named_parameters()["logits"].grad()}};
        continue;
      }
      REQUIRE(torch::allclose(out, reference_out, tol, tol));
      REQUIRE(torch::allclose(qkv[0].grad(), grads["q"], tol, tol));
      REQUIRE(torch::allclose(qkv[1].grad(), grads["k"], tol, tol));
      REQUIRE(torch::allclose(qkv[2].grad(), grads["v"], tol, tol));
      REQUIRE(torch::allclose(blend->named_parameters()["logits"].grad(), grads["logits"], tol, tol));
    }
  }
}

TEST_CASE("normalized blend with expected cost: a lambda sweep moves hard block density from causal to the cheapest candidate, monotonically",
          "[backends][blend][study]") {
  // A small fixed problem: match dense causal attention's output (MSE, scaled so that giving
  // up every key outside the cheapest candidate costs about 1) plus lambda x the expected
  // block cost. lambda = 0 must keep the causal layout, a large lambda the cheapest one.
  const Shape shape{2, 4, 128, 16};
  const std::int64_t tile = 16;
  const std::string candidates = "causal,window:48,sink:4|window:16";
  auto qkv = random_qkv(shape, 31);
  auto dense = make("dense", {{"execution", std::string("math")}}, shape);
  torch::Tensor target;
  {
    torch::NoGradGuard no_grad;
    target = dense->forward(qkv[0], qkv[1], qkv[2]);
  }
  auto cheapest = make("masks", {{"pattern", std::string("sink:4|window:16")}}, shape);
  const double scale = torch::mse_loss(cheapest->forward(qkv[0], qkv[1], qkv[2]), target).item<double>();
  std::vector<double> block;
  for (double lambda : {0.0, 0.1, 0.5, 2.0, 10.0}) {
    auto blend = make("blend", {{"candidates", candidates}, {"mixing", std::string("normalized")},
                                {"regularizer", std::string("expected_cost")}, {"soft", std::string("mixture")},
                                {"threshold_mode", std::string("argmax")}, {"tile", tile},
                                {"execution", std::string("block_sparse")}},
                      shape);
    torch::optim::Adam adam(blend->parameters(), torch::optim::AdamOptions(0.05));
    for (int step = 0; step < 150; ++step) {
      adam.zero_grad();
      const auto out = blend->forward(qkv[0], qkv[1], qkv[2]);
      const auto loss = torch::mse_loss(out, target) / scale + lambda * blend->regularizer();
      loss.backward();
      adam.step();
    }
    blend->set_hard(true);
    {
      torch::NoGradGuard no_grad;
      blend->forward(qkv[0], qkv[1], qkv[2]);
    }
    block.push_back(attnlab::density_of(*blend, shape.T).block);
    INFO("lambda " << lambda << ": hard block density " << block.back());
    if (block.size() > 1) REQUIRE(block.back() <= block[block.size() - 2] + 1e-12);
  }
  REQUIRE(block.front() == Approx(attnlab::masks::density("causal", shape.T, tile).block));
  REQUIRE(block.back() == Approx(attnlab::masks::density("sink:4|window:16", shape.T, tile).block));
  REQUIRE(block.front() > block.back());
}

TEST_CASE("the unnormalized blend under L1 keeps its hard layout whatever lambda: why the seed's objective cannot sparsify",
          "[backends][blend][study]") {
  // The finding the study reports: with log(w) biases the softmax sees only weight ratios, so
  // L1 shrinks all weights together and the relative cut keeps every candidate it started
  // with, whatever lambda. (No "causal" among the candidates, or its union would hide it.)
  const Shape shape{1, 2, 96, 16};
  const std::string candidates = "window:16,stride:8,sink:4|window:8";
  auto qkv = random_qkv(shape, 37);
  for (double lambda : {0.0, 1.0, 10.0}) {
    INFO("lambda " << lambda);
    auto blend = make("blend", {{"candidates", candidates}, {"tile", std::int64_t(16)}}, shape);
    torch::optim::Adam adam(blend->parameters(), torch::optim::AdamOptions(0.05));
    for (int step = 0; step < 100; ++step) {
      adam.zero_grad();
      const auto out = blend->forward(qkv[0], qkv[1], qkv[2]);
      (out.pow(2).mean() + lambda * blend->regularizer()).backward();
      adam.step();
    }
    blend->set_hard(true);
    REQUIRE(attnlab::density_of(*blend, shape.T).block ==
            Approx(attnlab::masks::density("window:16|stride:8|sink:4|window:8", shape.T, 16).block));
  }
}

TEST_CASE("normalized blend computes sum_k w_k softmax over M_k in both soft forms, against the float64 reference",
          "[backends][blend]") {
  // Blend 3.0: the header's formula. (2.x weighted candidate k by w_k e^{lse_k}, which leans on
  // the larger of nested masks beyond its weight.)
  const Shape shape{2, 2, 53, 8};
  const std::vector<std::string> candidates = {"causal", "window:6", "sink:2|window:3"};
  auto qkv = random_qkv(shape, 41, torch::kDouble);
  for (const char* soft : {"masked", "mixture"}) {
    INFO(soft);
    auto blend = make("blend", {{"candidates", std::string("causal,window:6,sink:2|window:3")}, {"soft", std::string(soft)},
                                {"mixing", std::string("normalized")}, {"regularizer", std::string("expected_cost")},
                                {"tile", std::int64_t(16)}}, shape);
    blend->to(torch::kDouble);
    {
      torch::NoGradGuard no_grad;
      blend->named_parameters()["logits"].normal_(0.0, 1.0);
    }
    const auto w = torch::softmax(blend->named_parameters()["logits"].detach(), 1);  // [H, K]
    torch::Tensor want;
    for (std::size_t c = 0; c < candidates.size(); ++c) {
      const auto one = attnlab::kernels::reference_attention(qkv[0], qkv[1], qkv[2], attnlab::masks::dense(candidates[c], shape.T),
                                                             1.0 / std::sqrt(double(shape.D)));
      const auto term = w.select(1, static_cast<std::int64_t>(c)).reshape({1, -1, 1, 1}) * one;
      want = want.defined() ? want + term : term;
    }
    const auto got = blend->forward(qkv[0], qkv[1], qkv[2]);
    CHECK((got - want).abs().max().item<double>() < 1e-10);
  }
}

TEST_CASE("gating on the kernel computes what masked gating computes, soft and hard, with gradients",
          "[backends][gating]") {
  // Same seed, same gates: the per-candidate kernel passes (soft) and the composed layouts
  // (hard) against the shared-scores T x T formulation, in float64 on odd sizes.
  const Shape shape{2, 3, 77, 12};
  const Given common{{"candidates", std::string("causal,window:9,stride:5,sink:2|window:4")}, {"block", std::int64_t(16)},
                     {"granularity", std::string("block")}, {"init_scale", 0.7}};
  auto qkv = random_qkv(shape, 43, torch::kDouble);
  for (const bool hard : {false, true}) {
    INFO((hard ? "hard" : "soft"));
    std::vector<torch::Tensor> outs, grads;
    for (const char* execution : {"masked", "block_sparse"}) {
      Given given = common;
      given["execution"] = std::string(execution);
      auto gating = make("gating", given, shape, 5);
      gating->to(torch::kDouble);
      gating->set_hard(hard);
      auto out = gating->forward(qkv[0], qkv[1], qkv[2]);
      outs.push_back(out.detach());
      if (!hard) {
        (out * out).sum().backward();
        grads.push_back(gating->named_parameters()["W"].grad().clone());
      }
    }
    CHECK((outs[0] - outs[1]).abs().max().item<double>() < 1e-10);
    if (!hard) {
      CHECK((grads[0] - grads[1]).abs().max().item<double>() < 1e-9);
      CHECK(grads[1].abs().sum().item<double>() > 0);
    }
  }
}

TEST_CASE("hard gating on the kernel runs per query tile the chosen candidate's rows", "[backends][gating]") {
  const Shape shape{2, 3, 70, 8};
  const std::vector<std::string> candidates = {"causal", "window:9", "sink:2|window:4"};
  auto gating = make("gating", {{"candidates", std::string("causal,window:9,sink:2|window:4")}, {"block", std::int64_t(16)},
                                {"init_scale", 1.0}}, shape, 3);
  gating->set_hard(true);
  auto qkv = random_qkv(shape, 47);
  gating->forward(qkv[0], qkv[1], qkv[2]);
  const auto layouts = gating->layouts(shape.T);
  REQUIRE(layouts.size() == static_cast<std::size_t>(shape.B * shape.H));
  // Rebuild the element mask from the gates: query block i of (b, h) uses candidate argmax g.
  const auto W = gating->named_parameters()["W"], bias = gating->named_parameters()["b"];
  std::set<std::int64_t> used;
  for (std::int64_t b = 0; b < shape.B; ++b)
    for (std::int64_t h = 0; h < shape.H; ++h) {
      const auto mask = layouts[b * shape.H + h]->to_dense();
      for (std::int64_t t0 = 0; t0 < shape.T; t0 += 16) {
        const auto logits = torch::mv(W[h], qkv[0][b][h][t0]) + bias[h];
        const auto c = logits.argmax().item<std::int64_t>();
        used.insert(c);
        const auto rows = std::min<std::int64_t>(16, shape.T - t0);
        CHECK(torch::equal(mask.narrow(0, t0, rows), attnlab::masks::dense(candidates[c], shape.T).narrow(0, t0, rows)));
      }
    }
  CHECK(used.size() > 1);  // the gates did choose differently somewhere
}

TEST_CASE("blend st_gumbel trains one drawn mask per head and deploys the argmax", "[backends][blend]") {
  const Shape shape{2, 4, 64, 8};
  const Given given{{"candidates", std::string("causal,window:8,sink:2|window:4")}, {"mixing", std::string("normalized")},
                    {"regularizer", std::string("expected_cost")}, {"selection", std::string("st_gumbel")},
                    {"execution", std::string("block_sparse")}, {"tile", std::int64_t(16)}, {"tau", 2.0}, {"tau_final", 0.5}};
  auto blend = make("blend", given, shape, 7);
  auto qkv = random_qkv(shape, 53);
  // Training: each step draws one mask per head; its value is that mask's attention.
  std::set<std::string> drawn;
  for (std::int64_t step = 0; step < 12; ++step) {
    blend->on_step(step, 12);
    auto out = blend->forward(qkv[0], qkv[1], qkv[2]);
    const auto layouts = blend->layouts(shape.T);
    const auto want = attnlab::kernels::block_sparse_attention(qkv[0], qkv[1], qkv[2], layouts, 1.0 / std::sqrt(8.0));
    REQUIRE(torch::allclose(out, want, 1e-5, 1e-6));
    for (const auto& l : layouts) drawn.insert(std::to_string(l->nnz()) + "/" + std::to_string(l->element_density()));
    auto logits = blend->named_parameters()["logits"];
    if (logits.grad().defined()) logits.mutable_grad().zero_();
    (out * out).sum().backward();
    CHECK(logits.grad().abs().sum().item<double>() > 0);  // straight through to the logits
    // The same step's forwards draw the same masks.
    REQUIRE(torch::equal(blend->forward(qkv[0], qkv[1], qkv[2]), out));
  }
  CHECK(drawn.size() > 1);  // the noise explored more than the argmax
  // The annealed temperature is logged, and reached tau_final.
  double tau = 0;
  for (const auto& s : blend->statistics())
    if (s.name == "tau") tau = s.value;
  CHECK(tau == Approx(0.5));
  // Eval forward (no noise) = hard mode = the argmax per head.
  blend->eval();
  const auto deployed = blend->forward(qkv[0], qkv[1], qkv[2]);
  blend->set_hard(true);
  CHECK(torch::equal(blend->forward(qkv[0], qkv[1], qkv[2]), deployed));
}

TEST_CASE("blend hard_after_step trains on the deployed masks from that step on", "[backends][blend]") {
  const Shape shape{1, 2, 40, 8};
  auto blend = make("blend", {{"candidates", std::string("window:4,stride:5,sink:2")}, {"hard_after_step", std::int64_t(3)}}, shape);
  auto qkv = random_qkv(shape, 59);
  auto hard_twin = make("blend", {{"candidates", std::string("window:4,stride:5,sink:2")}}, shape);
  hard_twin->set_hard(true);
  blend->on_step(2, 10);
  CHECK_FALSE(torch::allclose(blend->forward(qkv[0], qkv[1], qkv[2]), hard_twin->forward(qkv[0], qkv[1], qkv[2]), 1e-5, 1e-6));
  blend->on_step(3, 10);
  CHECK(torch::allclose(blend->forward(qkv[0], qkv[1], qkv[2]), hard_twin->forward(qkv[0], qkv[1], qkv[2]), 1e-6, 1e-7));
}

TEST_CASE("the seed changes blend's initial weights, and one seed reproduces them", "[backends][blend]") {
  const Shape shape;
  auto logits = [&](std::uint64_t seed) {
    return make("blend", {{"mixing", std::string("normalized")}, {"regularizer", std::string("expected_cost")}}, shape, seed)
        ->named_parameters()["logits"].detach().clone();
  };
  CHECK(torch::equal(logits(1), logits(1)));
  CHECK_FALSE(torch::equal(logits(1), logits(2)));
  CHECK((logits(1) - logits(2)).abs().max().item<double>() < 0.1);  // small: the start stays near uniform
}

TEST_CASE("blend search runs causal until the host chooses, then each head its chosen candidate", "[backends][blend]") {
  const Shape shape{2, 4, 64, 8};
  const std::vector<std::string> candidates = {"causal", "window:8", "sink:2|window:4"};
  const std::int64_t tile = 16;
  auto qkv = random_qkv(shape, 61);
  auto attention_over = [&](const std::string& mask) {
    return attnlab::kernels::block_sparse_attention(qkv[0], qkv[1], qkv[2], {attnlab::masks::block_layout(mask, shape.T, tile)},
                                                    1.0 / std::sqrt(8.0));
  };
  auto blend = make("blend", {{"candidates", std::string("causal,window:8,sink:2|window:4")}, {"selection", std::string("search")},
                              {"budget", 0.4}, {"search_batches", std::int64_t(3)}, {"execution", std::string("block_sparse")},
                              {"tile", tile}},
                    shape);
  auto* searchable = dynamic_cast<attnlab::HeadSearchable*>(blend.get());
  REQUIRE(searchable != nullptr);
  const auto spec = searchable->head_search(shape.T);
  REQUIRE(spec.has_value());
  CHECK(spec->candidates == candidates);
  CHECK(spec->budget == 0.4);
  CHECK(spec->batches == 3);
  for (std::size_t c = 0; c < candidates.size(); ++c)
    CHECK(spec->cost[c] == Approx(attnlab::masks::density(candidates[c], shape.T, tile).block /
                                  attnlab::masks::density("causal", shape.T, tile).block));
  CHECK(torch::allclose(blend->forward(qkv[0], qkv[1], qkv[2]), attention_over("causal"), 1e-5, 1e-6));
  CHECK_FALSE(blend->regularizer().defined());

  const std::vector<int> choice = {1, 2, attnlab::HeadSearchable::kCausal, 0};
  searchable->choose_heads(choice);
  const auto out = blend->forward(qkv[0], qkv[1], qkv[2]);
  for (std::int64_t h = 0; h < shape.H; ++h) {
    INFO("head " << h);
    const int c = choice[static_cast<std::size_t>(h)];
    const auto expected = attention_over(c == attnlab::HeadSearchable::kCausal ? "causal" : candidates[static_cast<std::size_t>(c)]);
    CHECK(torch::allclose(out.select(1, h), expected.select(1, h), 1e-5, 1e-6));
  }
  const auto layouts = blend->layouts(shape.T);
  REQUIRE(layouts.size() == static_cast<std::size_t>(shape.H));
  CHECK(layouts[0]->block_density() == Approx(attnlab::masks::density("window:8", shape.T, tile).block));
  CHECK(layouts[2]->block_density() == Approx(attnlab::masks::density("causal", shape.T, tile).block));
  // The statistics show the deployed choice one-hot, not the unused logits.
  double chosen_weight = 0;
  for (const auto& s : blend->statistics())
    if (s.name == "weight/h1/sink:2|window:4") chosen_weight = s.value;
  CHECK(chosen_weight == 1.0);
  CHECK_THROWS_WITH(searchable->choose_heads({0, 1}), Catch::Contains("a choice for 2 heads, built for 4"));
  CHECK_THROWS_WITH(searchable->choose_heads({0, 1, 3, 0}), Catch::Contains("no candidate 3"));
  // A blend that does not search offers nothing to measure.
  auto soft = make("blend", {}, shape);
  CHECK_FALSE(dynamic_cast<attnlab::HeadSearchable*>(soft.get())->head_search(shape.T).has_value());
}

TEST_CASE("topk learned block gate trains by KL to the block-pooled attention and only then", "[backends][topk]") {
  const Shape shape{1, 2, 77, 8};
  auto qkv = random_qkv(shape, 21, torch::kDouble);
  const Given learned{{"granularity", std::string("query_block")}, {"gate", std::string("learned")},
                      {"k", std::int64_t(2)}, {"tile", std::int64_t(16)}};
  auto backend = make("topk", learned, shape, 2);
  backend->to(torch::kDouble);
  backend->train();
  auto kl = [&] {
    torch::AutoGradMode with_grad(true);  // the KL exists only while training with gradients on
    backend->forward(qkv[0], qkv[1], qkv[2]);
    return backend->regularizer();
  };
  for (auto& [pname, p] : backend->named_parameters().pairs())
    if (pname.rfind("gate_", 0) == 0) require_gradient_matches(p, kl, "topk learned gate: KL wrt " + pname);
  // The KL's gradient reaches the gate only: q, k, v are detached inside.
  for (auto& t : qkv) t.requires_grad_(true);
  const auto first = kl();
  REQUIRE(first.defined());
  CHECK_FALSE(torch::autograd::grad({first}, {qkv[0]}, {}, true, false, true)[0].defined());
  for (auto& t : qkv) t.requires_grad_(false);
  // A few Adam steps on the KL alone lower it: the gate learns (from the identity start).
  std::vector<torch::Tensor> gate;
  for (auto& [pname, p] : backend->named_parameters().pairs())
    if (pname.rfind("gate_", 0) == 0) gate.push_back(p);
  torch::optim::Adam adam(gate, torch::optim::AdamOptions(1e-2));
  const double start = kl().item<double>();
  for (int step = 0; step < 40; ++step) {
    adam.zero_grad();
    kl().backward();
    adam.step();
  }
  CHECK(kl().item<double>() < 0.9 * start);
  // Not training, or another gate: no term.
  backend->eval();
  CHECK_FALSE(kl().defined());
  auto mean = make("topk", {{"granularity", std::string("query_block")}, {"k", std::int64_t(2)}, {"tile", std::int64_t(16)}},
                   shape, 2);
  mean->forward(qkv[0].to(torch::kFloat), qkv[1].to(torch::kFloat), qkv[2].to(torch::kFloat));
  CHECK_FALSE(mean->regularizer().defined());
}

TEST_CASE("attend checks rank, shapes, heads, dtype and device, naming the backend", "[backends][attend]") {
  const Shape shape;
  auto backend = make("dense", {}, shape);
  const auto q = at::randn({shape.B, shape.H, shape.T, shape.D}), k = at::randn_like(q), v = at::randn_like(q);
  const auto out = attnlab::attend(*backend, q, k, v, shape.H);
  REQUIRE(out.sizes() == q.sizes());
  REQUIRE(at::allclose(out, backend->forward(q, k, v)));
  auto refused = [&](const at::Tensor& q2, const at::Tensor& k2, const at::Tensor& v2, std::int64_t heads) {
    try {
      attnlab::attend(*backend, q2, k2, v2, heads);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  using Catch::Contains;
  const std::string name = "attention backend '" + backend->name() + "': ";
  REQUIRE_THAT(refused(q[0], k, v, shape.H), Contains(name + "q has rank 3") && Contains("[B, H, T, D]"));
  REQUIRE_THAT(refused(q, k.narrow(0, 0, 1), v, shape.H), Contains(name + "k [1, 3, 37, 8] and q [2, 3, 37, 8] disagree on B"));
  REQUIRE_THAT(refused(q, k, v.narrow(1, 0, 2), shape.H), Contains("disagree on H"));
  REQUIRE_THAT(refused(q, k.narrow(3, 0, 4), v, shape.H), Contains("disagree on D"));
  REQUIRE_THAT(refused(q, k, v.narrow(2, 0, 5), shape.H), Contains("disagree on S"));
  REQUIRE_THAT(refused(q, k.narrow(2, 0, 5), v.narrow(2, 0, 5), shape.H), Contains("needs S == T"));
  REQUIRE_THAT(refused(q, k, v, shape.H + 1), Contains(name + "q has H = 3 heads, the backend was built for n_heads = 4"));
  REQUIRE_THAT(refused(q.to(at::kInt), k.to(at::kInt), v.to(at::kInt), shape.H), Contains("expected a floating dtype"));
  REQUIRE_THAT(refused(q, k.to(at::kDouble), v, shape.H), Contains(name + "k is Double, q is Float"));
  REQUIRE_THAT(refused(q, k, v.to(at::Device("meta")), shape.H), Contains(name + "v is on meta, q on cpu"));
  // The backend's own parameters on another device than the inputs (blend's weights on the CPU).
  auto blend = make("blend", {}, shape);
  REQUIRE(!blend->parameters().empty());
  const auto meta = at::Device("meta");
  try {
    attnlab::attend(*blend, q.to(meta), k.to(meta), v.to(meta), shape.H);
    FAIL("accepted");
  } catch (const std::invalid_argument& e) {
    REQUIRE_THAT(e.what(), Contains("its parameters are on cpu, the inputs on meta"));
  }
}
