// The levers of the recall teacher (issue 18): QK-norm and shifted-key heads (gpt2.hpp), and the
// two-phase training schedule (teacher.cpp).
// Each is checked for what it claims (scale-free scores; keys from the previous token), for
// causality, for gradients that reach its parameters, and for surviving a checkpoint round trip.
#include "model/gpt2.hpp"
#include "model/teacher.hpp"

#include <attnlab/registry.hpp>

#include <ATen/ATen.h>
#include "catch.hpp"

#include "support.hpp"

#include <filesystem>

namespace fs = std::filesystem;
using namespace attnlab;
using namespace attnlab::model;

namespace {

AttentionFactory dense_math() {
  return [](const BackendInit& init) {
    return test::registry().create("dense", init, {{"execution", std::string("math")}});
  };
}

GPT2Config small(bool qk_norm, std::int64_t shifted) {
  GPT2Config c;
  c.vocab_size = 29, c.n_positions = 32, c.n_embd = 24, c.n_layer = 2, c.n_head = 3;  // D = 8
  c.positions = "rope";
  c.qk_norm = qk_norm;
  c.shifted_key_heads = shifted;
  return c;
}

// Multiplies the query and key rows of every layer's c_attn by `factor` (weights and biases).
void scale_qk(GPT2& model, double factor) {
  torch::NoGradGuard no_grad;
  const auto C = model.config().n_embd;
  for (auto& [name, p] : model.weights())
    if (name.find(".attn.c_attn.") != std::string::npos) p.narrow(0, 0, 2 * C).mul_(factor);
}

}  // namespace

TEST_CASE("qk_norm: scores do not change with the scale of q and k, and its gains learn", "[model]") {
  at::manual_seed(5);
  const auto idx = at::randint(0, 29, {2, 20}, at::kLong);
  for (const bool qk_norm : {true, false}) {
    torch::NoGradGuard no_grad;
    GPT2 model(small(qk_norm, 0), dense_math(), 3);
    REQUIRE(model.weights().count("h.0.attn.q_norm") == (qk_norm ? 1u : 0u));
    // First out of the regime where eps (1e-5) is comparable to the initial q.q / D (~1e-2).
    scale_qk(model, 10.0);
    const auto before = model.forward(idx);
    scale_qk(model, 7.0);
    // Normalised q and k are the same after the scaling; without the norm the scores grow 49x.
    REQUIRE(at::allclose(model.forward(idx), before, 1e-4, 1e-4) == qk_norm);
  }
  // The gains start at 1 and get a gradient equal to a central difference (float64).
  GPT2 model(small(true, 0), dense_math(), 3);
  model.to(at::kDouble);
  auto gain = model.weights().at("h.1.attn.k_norm");
  REQUIRE(at::equal(gain, at::ones_like(gain)));
  auto loss = [&] { return model.forward(idx).pow(2).mean(); };
  loss().backward();
  const double analytic = gain.grad()[2].item<double>(), h = 1e-5;
  REQUIRE(std::abs(analytic) > 1e-8);
  auto at_offset = [&](double d) {
    at::AutoGradMode off(false);
    gain.data()[2] += d;
    const double l = loss().item<double>();
    gain.data()[2] -= d;
    return l;
  };
  REQUIRE(std::abs((at_offset(h) - at_offset(-h)) / (2 * h) - analytic) < 1e-6 + 1e-4 * std::abs(analytic));
}

TEST_CASE("shifted_key_heads: those heads key by the previous token, stay causal and round-trip", "[model]") {
  at::manual_seed(6);
  torch::NoGradGuard no_grad;
  const auto idx = at::randint(0, 29, {2, 21}, at::kLong);
  GPT2 plain(small(true, 0), dense_math(), 4);
  // Same weights, the shift turned on: a different function, still causal.
  GPT2 on(small(true, 2), dense_math(), 4);
  on.load_weights(plain.weights(), "test");
  REQUIRE_FALSE(at::allclose(on.forward(idx), plain.forward(idx), 1e-3, 1e-3));
  auto perturbed = idx.clone();
  perturbed.narrow(1, 12, 9).random_(0, 29);
  REQUIRE(at::equal(on.forward(perturbed).narrow(1, 0, 12), on.forward(idx).narrow(1, 0, 12)));
  REQUIRE_FALSE(at::allclose(on.forward(perturbed).narrow(1, 12, 9), on.forward(idx).narrow(1, 12, 9)));

  // One layer, one head, all shifted: position t attends to keys built from tokens t-1 .. -1, so
  // the output at t cannot depend on token t through the keys, only through q and v. Position 0
  // sees one zero key: its attention output is v_0 whatever the keys.
  auto one = small(false, 1);
  one.n_layer = 1, one.n_head = 1, one.positions = "learned";
  GPT2 single(one, dense_math(), 8);
  auto& attn = *single.h->ptr(0)->as<BlockImpl>()->attn;
  const auto x = at::randn({1, 6, one.n_embd});
  const auto C = one.n_embd;
  const auto kv = attn.c_attn->forward(x);
  const auto q = kv.narrow(2, 0, C), k = kv.narrow(2, C, C), v = kv.narrow(2, 2 * C, C);
  const auto k_prev = at::cat({at::zeros({1, 1, C}), k.narrow(1, 0, 5)}, 1);
  auto scores = at::matmul(q, k_prev.transpose(1, 2)) / std::sqrt(double(C));
  scores = scores.masked_fill(at::ones({6, 6}, at::kBool).triu(1), -INFINITY);
  const auto want = attn.c_proj->forward(at::matmul(at::softmax(scores, -1), v));
  REQUIRE(at::allclose(attn.forward(x), want, 1e-5, 1e-5));

  const auto dir = test::fresh_dir("recall_levers");
  const auto path = (dir / "shifted.safetensors").string();
  save_checkpoint(on, path);
  auto loaded = load_any(path, dense_math());
  REQUIRE(loaded->config().shifted_key_heads == 2);
  REQUIRE(loaded->config().qk_norm);
  REQUIRE(at::equal(loaded->forward(idx), on.forward(idx)));
  // GPT-2's own config keeps its JSON (teacher cache keys are hashed from it), and n > n_head fails.
  REQUIRE_FALSE(GPT2Config{}.to_json().contains("qk_norm"));
  REQUIRE_FALSE(GPT2Config{}.to_json().contains("shifted_key_heads"));
  REQUIRE_THROWS_WITH(small(false, 4).validate(), Catch::Contains("shifted_key_heads = 4"));
  fs::remove_all(dir);
}

TEST_CASE("teacher schedule: short_frac of the steps at short_seq_len on short_batch windows, then seq_len", "[model]") {
  // Every training step's request (windows, length, share with a record) is recorded by the
  // batch source; the teacher is trained for real (a tiny one) and cached under a fresh folder.
  struct Request {
    std::int64_t batch, seq_len;
    double record_fraction;
  };
  std::vector<Request> requests;
  TeacherContext context;
  context.corpus = "test", context.tokenizer_name = "bytes", context.tokenizer_fingerprint = "test";
  context.vocab_size = 29;
  context.results_dir = test::fresh_dir("teacher_schedule").string();
  context.dense = dense_math();
  context.train_batches = [&](std::int64_t batch, std::int64_t seq_len, double fraction) {
    requests.push_back({batch, seq_len, fraction});
    return text::RecallBatch{at::randint(0, 29, {batch, seq_len + 1}, at::kLong),
                             at::zeros({batch, seq_len}, at::kBool), at::zeros({batch, seq_len}, at::kLong)};
  };
  context.recall.fraction = 0.25;
  TeacherSpec spec;
  spec.n_layer = 1, spec.n_head = 2, spec.n_embd = 16, spec.block_size = 64, spec.positions = "rope";
  spec.steps = 10, spec.batch = 2, spec.seq_len = 48;
  spec.short_seq_len = 12, spec.short_frac = 0.4, spec.short_batch = 7, spec.short_recall_fraction = 1.0;

  SECTION("short_batch set") {
    obtain_teacher(spec, context);
    REQUIRE(requests.size() == 10);
    for (std::size_t step = 0; step < requests.size(); ++step) {
      const bool short_phase = step < 4;
      INFO("step " << step);
      CHECK(requests[step].batch == (short_phase ? 7 : 2));
      CHECK(requests[step].seq_len == (short_phase ? 12 : 48));
      CHECK(requests[step].record_fraction == (short_phase ? 1.0 : 0.25));
    }
  }
  SECTION("short_batch 0 keeps batch, and leaves the cache key of teachers cached before it existed") {
    spec.short_batch = 0;
    const auto key_without = teacher_cache_dir(spec, context);
    obtain_teacher(spec, context);
    REQUIRE(requests.front().batch == 2);
    REQUIRE(requests.front().seq_len == 12);
    spec.short_batch = 7;
    REQUIRE(teacher_cache_dir(spec, context) != key_without);
    TeacherSpec plain = spec;
    plain.short_batch = 0;
    REQUIRE(teacher_cache_dir(plain, context) == key_without);
  }
  fs::remove_all(context.results_dir);
}
