// Distillation: the dense control reproduces the teacher exactly, the loss is the documented
// formula, and a full trial (teacher trained and cached on a tiny corpus) trains, evaluates and
// samples; with a learnable backend the loss falls.
#include "model/distill.hpp"
#include "model/gpt2.hpp"
#include "model/head_search.hpp"
#include "model/sha256.hpp"
#include "base/sink.hpp"

#include <attnlab/head_search.hpp>
#include <attnlab/masks.hpp>
#include <attnlab/registry.hpp>

#include <ATen/ATen.h>
#include <torch/version.h>
#include "catch.hpp"

#include "support.hpp"

#include <filesystem>
#include <fstream>
#include <random>
#include <set>

namespace fs = std::filesystem;
using namespace attnlab;
using namespace attnlab::model;

namespace {

using attnlab::test::fresh_dir;
using attnlab::test::MemorySink;
using attnlab::test::registry;

BackendFactory plugin_factory() {
  return [](const std::string& name, const BackendInit& init, const std::map<std::string, ParamValue>& params) {
    return registry().create(name, init, params);
  };
}

AttentionFactory dense() {
  return [](const BackendInit& init) { return registry().create("dense", init, {}); };
}

// A tiny corpus: sentences from a small grammar, deterministic, a few thousand lines.
fs::path tiny_corpus(const fs::path& dir) {
  const std::vector<std::string> subjects = {"The jury", "It", "The city", "A man", "The board", "She"};
  const std::vector<std::string> verbs = {"said", "was", "found", "took", "made", "saw"};
  const std::vector<std::string> objects = {"a report", "the vote", "an end", "the money", "no evidence", "it all"};
  std::mt19937 rng(5);
  std::ofstream out(dir / "corpus.txt");
  for (int line = 0; line < 600; ++line) {
    out << subjects[rng() % subjects.size()] << " " << verbs[rng() % verbs.size()] << " "
        << objects[rng() % objects.size()] << ".\n";
  }
  return dir / "corpus.txt";
}

// The [data] of a trial on that corpus.
DataSpec tiny_data(const fs::path& dir) {
  DataSpec data;
  data.corpus = "text:" + tiny_corpus(dir).string();
  return data;
}

TeacherSpec tiny_teacher() {
  TeacherSpec t;
  t.n_layer = 2, t.n_head = 2, t.n_embd = 32, t.block_size = 64;
  t.steps = 200, t.batch = 8, t.seq_len = 32, t.lr = 1e-2, t.seed = 1;
  return t;
}

DistillSpec tiny_distill(const std::string& backend) {
  DistillSpec d;
  d.backend = backend;
  d.seq_len = 32, d.batch = 4, d.steps = 12, d.log_every = 1;
  d.eval.seq_lens = {32, 128};  // 128 > block_size: skipped with a note
  d.eval.windows = 4;
  d.eval.sample_tokens = 12;
  return d;
}

// A fixed-mask student on the block-sparse kernel, tile 16.
DistillSpec kernel_masks(const std::string& pattern) {
  auto spec = tiny_distill("masks");
  spec.backend_params = {{"pattern", pattern}, {"execution", std::string("block_sparse")}, {"tile", std::int64_t(16)}};
  return spec;
}

double mean(const std::vector<double>& v, size_t from, size_t to) {
  double s = 0;
  for (size_t i = from; i < to; ++i) s += v[i];
  return s / double(to - from);
}

}  // namespace

TEST_CASE("a student with dense attention computes the teacher's logits, KL = 0") {
  GPT2Config c;
  c.vocab_size = 41, c.n_positions = 24, c.n_embd = 24, c.n_layer = 2, c.n_head = 3;
  GPT2 teacher(c, dense(), /*seed=*/9);
  auto student = teacher.copy_with_attention(dense());
  const auto idx = at::randint(0, c.vocab_size, {2, 19}, at::kLong);
  torch::NoGradGuard no_grad;
  const auto t = teacher.forward(idx), s = student->forward(idx);
  REQUIRE(at::allclose(s, t, 1e-6, 1e-6));
  DistillSpec spec;
  spec.alpha_ce = 1.0;
  const auto parts = distill_loss(s, t, idx, {}, spec);
  REQUIRE(std::abs(parts.kl) < 1e-7);
  // swap_attention replaces every layer's backend in place: a window changes the output,
  // swapping dense back restores it.
  student->swap_attention([](const BackendInit& init) {
    return registry().create("masks", init, {{"pattern", std::string("window:3")}});
  });
  REQUIRE_FALSE(at::allclose(student->forward(idx), t, 1e-4, 1e-4));
  student->swap_attention(dense());
  REQUIRE(at::allclose(student->forward(idx), t, 1e-6, 1e-6));
  // A deep copy: changing the student leaves the teacher alone.
  student->ln_f->weight.add_(1.0);
  REQUIRE_FALSE(at::allclose(student->forward(idx), t));
  REQUIRE(at::equal(teacher.forward(idx), t));
}

TEST_CASE("distill_loss is alpha_ce CE + alpha_kl tau^2 KL(teacher || student) + lambda reg") {
  at::manual_seed(3);
  const auto s = at::randn({2, 5, 7}), t = at::randn({2, 5, 7});
  const auto y = at::randint(0, 7, {2, 5}, at::kLong);
  const auto reg = at::tensor(0.75);
  DistillSpec spec;
  spec.alpha_ce = 0.3, spec.alpha_kl = 0.9, spec.temperature = 2.0, spec.lambda = 0.1;
  const auto parts = distill_loss(s, t, y, reg, spec);

  // float64, written out per position
  const auto sd = s.to(at::kDouble), td = t.to(at::kDouble);
  double kl = 0, ce = 0;
  for (int b = 0; b < 2; ++b)
    for (int i = 0; i < 5; ++i) {
      auto ps = at::softmax(sd[b][i] / 2.0, 0), pt = at::softmax(td[b][i] / 2.0, 0);
      kl += (pt * (pt.log() - ps.log())).sum().item<double>();
      ce -= at::log_softmax(sd[b][i], 0)[y[b][i].item<std::int64_t>()].item<double>();
    }
  kl /= 10, ce /= 10;
  REQUIRE(parts.kl == Approx(kl).epsilon(1e-5));
  REQUIRE(parts.ce == Approx(ce).epsilon(1e-5));
  REQUIRE(parts.reg == Approx(0.75));
  REQUIRE(parts.loss.item<double>() == Approx(0.3 * ce + 0.9 * 4.0 * kl + 0.1 * 0.75).epsilon(1e-5));
}

TEST_CASE("dense control trial: teacher trained once and cached, student = teacher, paired samples") {
  const auto dir = fresh_dir("distill_dense");
  auto data = tiny_data(dir);
  data.tokenizer = "bytes";
  const auto results = (dir / "results").string();

  MemorySink first;
  run_distill(data, tiny_teacher(), tiny_distill("dense"), plugin_factory(), results, first);
  REQUIRE_THAT(first.infos.at("teacher.source"), Catch::Matchers::StartsWith("trained and cached"));
  REQUIRE(first.infos.count("train.skipped") == 1);  // dense has nothing to train
  const auto teacher_loss = first.curve("teacher/train_loss");
  REQUIRE(teacher_loss.size() >= 2);
  REQUIRE(teacher_loss.back() < teacher_loss.front() - 1.0);  // the teacher learned the corpus

  REQUIRE(first.final("eval/T32/kl") < 1e-6);
  REQUIRE(std::abs(first.final("eval/T32/delta_ppl")) < 1e-4);
  // Identical per-window numbers: every bootstrap resample gives 0 too.
  REQUIRE(std::abs(first.final("eval/T32/delta_ppl_lo")) < 1e-4);
  REQUIRE(std::abs(first.final("eval/T32/delta_ppl_hi")) < 1e-4);
  REQUIRE(first.final("eval/T32/agreement") == 1.0);
  // Bits per byte from the same NLL (the bytes tokenizer: one byte per token).
  REQUIRE(first.final("eval/T32/teacher_bpb") == Approx(std::log2(first.final("eval/T32/teacher_ppl"))));
  // Every window of the split was used, and the dense teacher was timed both ways.
  REQUIRE(first.final("eval/T32/windows") >= 1);
  REQUIRE(first.final("eval/T32/teacher_sdpa_tokens_per_s") > 0);
  REQUIRE(first.final("eval/T32/teacher_kernel_tokens_per_s") > 0);
  REQUIRE(first.final("eval/T32/speedup") > 0);
  // Timed on [eval] timing_batches batches (5 by default: 4 windows make one batch, cycled),
  // interleaved with the teacher; the spread is recorded.
  REQUIRE(first.final("eval/T32/timing_batches") == 5);
  REQUIRE(first.final("eval/T32/tokens_per_s_lo") <= first.final("eval/T32/tokens_per_s"));
  REQUIRE(first.final("eval/T32/tokens_per_s") <= first.final("eval/T32/tokens_per_s_hi"));
  REQUIRE(first.final("eval/T32/speedup_lo") <= first.final("eval/T32/speedup_hi"));
  REQUIRE(first.final("eval/T32/soft_hard_gap") == 0.0);  // dense: hard is soft
  INFO("teacher ppl " << first.final("eval/T32/teacher_ppl"));
  REQUIRE(first.final("eval/T32/teacher_ppl") < 6.0);  // far below 256 (uniform over bytes)
  REQUIRE(first.final("eval/T32/tokens_per_s") > 0);
  REQUIRE(first.final("eval/T32/peak_mib") > 0);
  // What ran: LibTorch 2.x's flash attention computes the causal triangle; 1.13's composite
  // sdpa computes all of T x T, and is reported so.
  REQUIRE(first.final("eval/T32/density") == Approx(TORCH_VERSION_MAJOR >= 2 ? (32.0 * 33 / 2) / (32.0 * 32) : 1.0));
  REQUIRE(first.metrics.count("eval/T32/hard_kl") == 0);  // dense has no hard mode
  REQUIRE(first.metrics.count("eval/T128/kl") == 0);
  REQUIRE_THAT(first.infos.at("eval.T128"), Catch::Contains("exceeds the model's n_positions = 64"));
  REQUIRE(std::abs(first.curve("train/kl").front()) < 1e-6);

  for (const std::string prompt : {"The jury said", "It was a"})
    for (const std::string mode : {"greedy", "sampled"}) {
      INFO(prompt << " " << mode);
      const auto teacher = first.samples.at(prompt + "|teacher|" + mode);
      REQUIRE(teacher.size() == 12);  // 12 byte tokens
      REQUIRE(first.samples.at(prompt + "|student|" + mode) == teacher);
    }

  // The teacher's identity: the file, its sha256, the recipe, the tokenizer.
  REQUIRE(first.infos.at("teacher.sha256") == sha256_file(first.infos.at("teacher.path")));
  REQUIRE_THAT(first.infos.at("teacher.config"), Catch::Contains("\"n_embd\":32"));
  REQUIRE(first.infos.at("teacher.tokenizer") == "bytes");

  MemorySink second;
  run_distill(data, tiny_teacher(), tiny_distill("dense"), plugin_factory(), results, second);
  REQUIRE_THAT(second.infos.at("teacher.source"), Catch::Matchers::StartsWith("cache hit"));
  REQUIRE(second.infos.at("teacher.sha256") == first.infos.at("teacher.sha256"));
  REQUIRE(second.final("eval/T32/teacher_ppl") == first.final("eval/T32/teacher_ppl"));
  fs::remove_all(dir);
}

TEST_CASE("distill trial: a windowed student trained end to end lowers its loss") {
  const auto dir = fresh_dir("distill_masks");
  const auto data = tiny_data(dir);
  auto spec = kernel_masks("window:2");
  spec.train = "all";
  spec.lr = 3e-3;
  spec.steps = 16;
  MemorySink sink;
  run_distill(data, tiny_teacher(), spec, plugin_factory(), (dir / "results").string(), sink);

  const auto loss = sink.curve("train/loss");
  REQUIRE(loss.size() == 16);
  INFO("first losses " << loss[0] << " " << loss[1] << " last " << loss.back());
  REQUIRE(loss.front() > 0.05);  // the window really changes the model
  REQUIRE(mean(loss, 12, 16) < 0.7 * mean(loss, 0, 4));
  REQUIRE(sink.final("train/ms_per_step") > 0);
  REQUIRE(sink.final("eval/T32/kl") > 0);
  REQUIRE(sink.final("eval/T32/density") < 0.2);  // window:2 of 32
  // On the kernel: the tiles it counted, 2 diagonal + 1 edge tile of the causal 3.
  REQUIRE(sink.final("eval/T32/causal_fraction") == Approx(1.0));
  const auto lr = sink.curve("train/lr");
  REQUIRE(lr[1] > lr[0]);        // warmup
  REQUIRE(lr.back() < lr[3]);    // cosine decay
  fs::remove_all(dir);
}

TEST_CASE("distill trial: a blend student trains only its mask weights and logs their evolution") {
  const auto dir = fresh_dir("distill_blend");
  const auto data = tiny_data(dir);
  auto spec = tiny_distill("blend");
  spec.backend_params = {{"candidates", std::string("causal,window:4")}, {"init", 0.5}};
  spec.lr = 0.1;
  spec.steps = 16;
  MemorySink sink;
  run_distill(data, tiny_teacher(), spec, plugin_factory(), (dir / "results").string(), sink);

  // train = "backend": only the blend weights (2 layers x 2 heads x 2 candidates) train.
  REQUIRE(sink.final("train/trainable_params") == 8);
  const auto loss = sink.curve("train/loss");
  REQUIRE(loss.size() == 16);
  REQUIRE(mean(loss, 12, 16) < mean(loss, 0, 4));
  bool has_stats = false;
  for (const auto& [name, points] : sink.metrics)
    if (name.rfind("stat/L1/", 0) == 0 && points.size() == 16) has_stats = true;
  REQUIRE(has_stats);
  REQUIRE(sink.final("train/reg") > 0);
  fs::remove_all(dir);
}

TEST_CASE("distill trial: train = all steps the weights at weights_lr and the backend at lr") {
  const auto dir = fresh_dir("distill_weights_lr");
  const auto data = tiny_data(dir);
  auto run = [&](const std::string& train, double weights_lr) {
    auto spec = tiny_distill("blend");
    spec.backend_params = {{"candidates", std::string("causal,window:4")}, {"init", 0.5}};
    spec.lr = 0.1, spec.steps = 8, spec.train = train, spec.weights_lr = weights_lr;
    spec.eval.seq_lens = {32};
    spec.eval.soft = true;
    spec.eval.sample_tokens = 0;
    MemorySink sink;
    run_distill(data, tiny_teacher(), spec, plugin_factory(), (dir / "results").string(), sink);
    return sink;
  };
  // Soft mode: what the weights and the trained logits compute (hard mode here keeps every
  // candidate, i.e. runs causal, whatever the logits).
  auto kl = [](const MemorySink& sink) { return sink.final("eval/T32/kl"); };
  const auto backend_only = run("backend", 0.0);
  const auto frozen_weights = run("all", 1e-12);  // the weights' group: a step too small to matter
  const auto same_lr = run("all", 0.0);            // 0: the weights at lr = 0.1 too
  REQUIRE(frozen_weights.final("train/trainable_params") > backend_only.final("train/trainable_params"));
  // The backend's logits still move at lr: the run matches train = "backend" ...
  REQUIRE(kl(frozen_weights) == Approx(kl(backend_only)).epsilon(1e-4));
  REQUIRE(kl(frozen_weights) > 0);
  // ... and weights stepped at 0.1 change the model far more.
  REQUIRE(std::abs(kl(same_lr) - kl(backend_only)) > 10 * std::abs(kl(frozen_weights) - kl(backend_only)) + 1e-3);
  fs::remove_all(dir);
}

TEST_CASE("distill trial: cost_seq_lens time the student and measure its density but not its quality") {
  const auto dir = fresh_dir("distill_cost_lens");
  const auto data = tiny_data(dir);
  auto spec = kernel_masks("window:16");
  spec.steps = 0;
  spec.eval.seq_lens = {32};
  spec.eval.cost_seq_lens = {64};
  spec.eval.timing_batches = 2;
  spec.eval.sample_tokens = 0;
  MemorySink sink;
  run_distill(data, tiny_teacher(), spec, plugin_factory(), (dir / "results").string(), sink);
  REQUIRE(sink.final("eval/T64/speedup") > 0);
  REQUIRE(sink.final("eval/T64/teacher_tokens_per_s") > 0);
  // window:16 at tile 16: 2 tiles per query tile (1 for the first), of the causal 10 at 64 / 16.
  REQUIRE(sink.final("eval/T64/causal_fraction") == Approx(7.0 / 10.0));
  REQUIRE(sink.metrics.count("eval/T64/kl") == 0);
  REQUIRE(sink.metrics.count("eval/T64/student_bpb") == 0);
  REQUIRE(sink.metrics.count("eval/T32/kl") == 1);
  REQUIRE(sink.infos.at("eval.T64").find("cost only") != std::string::npos);

  spec.eval.cost_seq_lens = {32};  // already measured by seq_lens: refused before anything runs
  REQUIRE_THROWS_WITH(run_distill(data, tiny_teacher(), spec, plugin_factory(), (dir / "results").string(), sink),
                      Catch::Contains("both seq_lens and cost_seq_lens"));
  fs::remove_all(dir);
}

TEST_CASE("distill trial: every learnable backend trains a few steps with its regularizer") {
  // Regression: a backend whose regularizer comes from its last forward (gating) must see this
  // step's forward, not the previous step's freed graph.
  const auto dir = fresh_dir("distill_all_backends");
  const auto data = tiny_data(dir);
  for (const std::string backend : {"blend", "gating", "topk"}) {
    INFO(backend);
    auto spec = tiny_distill(backend);
    spec.steps = 3;
    spec.lambda = 0.1;
    spec.eval.seq_lens = {32};
    spec.eval.prompts = {};
    MemorySink sink;
    run_distill(data, tiny_teacher(), spec, plugin_factory(), (dir / "results").string(), sink);
    REQUIRE(sink.curve("train/loss").size() == 3);
    // Hard mode changes what these students compute: it is the one evaluated.
    REQUIRE(sink.metrics.count("eval/T32/student_ppl") == 0);
    REQUIRE(std::isfinite(sink.final("eval/T32/hard_student_ppl")));
    REQUIRE(sink.final("eval/T32/hard_delta_ppl_lo") <= sink.final("eval/T32/hard_delta_ppl"));
    REQUIRE(sink.final("eval/T32/hard_delta_ppl") <= sink.final("eval/T32/hard_delta_ppl_hi"));
    // Soft is evaluated too, for the gap deploying costs (its other metrics only with [eval] soft).
    REQUIRE(std::isfinite(sink.final("eval/T32/soft_hard_gap")));
    REQUIRE(sink.final("eval/T32/hard_causal_fraction") > 0);
  }
  fs::remove_all(dir);
}

TEST_CASE("distill trial: topk's parameter-free gates train nothing and are evaluated as they are") {
  // Regression: query_block topk registered a per-head metric its forward never used, so a
  // sweep's steps > 0 failed with "element 0 of tensors does not require grad".
  const auto dir = fresh_dir("distill_topk_free_gates");
  const auto data = tiny_data(dir);
  for (const std::string gate : {"mean", "oracle", "random", "learned"}) {
    INFO(gate);
    auto spec = tiny_distill("topk");
    spec.steps = 2;
    spec.backend_params = {{"granularity", std::string("query_block")}, {"gate", gate}, {"k", std::int64_t{1}},
                           {"tile", std::int64_t{16}}, {"execution", std::string("block_sparse")}};
    spec.eval.seq_lens = {32};
    spec.eval.prompts = {};
    MemorySink sink;
    run_distill(data, tiny_teacher(), spec, plugin_factory(), (dir / "results").string(), sink);
    REQUIRE(sink.infos.count("train.skipped") == (gate == "learned" ? 0u : 1u));
    if (gate == "learned")
      REQUIRE(sink.final("train/trainable_params") > 0);  // its gate projections
    else
      REQUIRE(sink.final("train/trainable_params") == 0);
    // Hard top-k in both modes: one evaluation, unprefixed.
    REQUIRE(std::isfinite(sink.final("eval/T32/student_ppl")));
    REQUIRE(sink.final("eval/T32/causal_fraction") < 1.0);
  }
  fs::remove_all(dir);
}

TEST_CASE("distill trial: blend st_gumbel trains the masks it deploys, so soft and hard evaluate alike") {
  const auto dir = fresh_dir("distill_st_gumbel");
  const auto data = tiny_data(dir);
  auto spec = tiny_distill("blend");
  spec.steps = 4;
  spec.lambda = 0.1;
  spec.eval.seq_lens = {32};
  spec.eval.prompts = {};
  spec.backend_params = {{"mixing", std::string("normalized")}, {"regularizer", std::string("expected_cost")},
                         {"selection", std::string("st_gumbel")}, {"execution", std::string("block_sparse")},
                         {"tile", std::int64_t(16)}};
  MemorySink sink;
  run_distill(data, tiny_teacher(), spec, plugin_factory(), (dir / "results").string(), sink);
  // The eval forward (no noise) is the argmax per head, which hard mode deploys: no gap.
  REQUIRE(sink.final("eval/T32/soft_hard_gap") == 0.0);
  REQUIRE(sink.metrics.count("eval/T32/hard_kl") == 0);
  // What ran: one mask per head, on the kernel: at most the causal tiles.
  REQUIRE(sink.final("eval/T32/causal_fraction") <= 1.0 + 1e-9);
  REQUIRE(sink.curve("stat/L0/tau").size() == 4);
  fs::remove_all(dir);
}

TEST_CASE("greedy head assignment: cheapest loss per unit of cost saved first, until the budget holds", "[search]") {
  const std::vector<std::vector<double>> cost = {{1.0, 0.5, 0.25}, {1.0, 0.5, 0.25}};
  const std::vector<std::vector<double>> delta = {{0.0, 0.1, 1.0}, {0.0, 0.05, 0.06}};
  // Head 1 -> 0.25 costs 0.08 per unit saved (the cheapest move), then head 0 -> 0.5 at 0.2.
  CHECK(greedy_assignment(delta, cost, 0.5) == std::vector<int>{1, 2});
  CHECK(greedy_assignment(delta, cost, 1.0) == std::vector<int>{0, 0});
  CHECK(greedy_assignment(delta, cost, 0.0) == std::vector<int>{2, 2});  // out of reach: every head at its cheapest
}

TEST_CASE("the host's head search measures each head's output KL on the model and assigns under the budget", "[search]") {
  GPT2Config c;
  c.vocab_size = 37, c.n_positions = 64, c.n_embd = 32, c.n_layer = 2, c.n_head = 2;
  GPT2 teacher(c, dense(), /*seed=*/4);
  const std::vector<std::string> candidates = {"causal", "window:8", "sink:1|window:2"};  // 10, 7 and 9 tiles of 16 at T = 64
  auto searching = [&](double budget) {
    return teacher.copy_with_attention([&](const BackendInit& init) {
      return registry().create("blend", init,
                               {{"candidates", std::string("causal,window:8,sink:1|window:2")}, {"selection", std::string("search")},
                                {"budget", budget}, {"search_batches", std::int64_t(2)}, {"execution", std::string("block_sparse")},
                                {"tile", std::int64_t(16)}});
    });
  };
  std::vector<CalibrationBatch> batches;
  for (int i = 0; i < 2; ++i) batches.push_back({at::randint(0, c.vocab_size, {3, 64}, at::kLong), {}});
  auto draw_from = [&](std::size_t& next) { return [&] { return batches[next++ % batches.size()]; }; };

  // The recorded delta of one switch is the KL of the model with that head alone switched.
  auto student = searching(1.0);
  std::size_t next = 0;
  MemorySink sink;
  REQUIRE(search_heads(*student, teacher, draw_from(next), 0.0, 1, sink));
  CHECK(next == 2);
  CHECK(sink.final("search/L0/h0/causal") == 0.0);  // the same computation as the all-causal base
  auto* layer1 = dynamic_cast<HeadSearchable*>(student->backends()[1].get());
  layer1->choose_heads({HeadSearchable::kCausal, 1});
  DistillSpec kl_only;
  kl_only.alpha_ce = 0.0;
  double switched = 0;
  {
    torch::NoGradGuard no_grad;
    for (const auto& b : batches) switched += distill_loss(student->forward(b.inputs), teacher.forward(b.inputs), b.inputs, {}, kl_only).kl / 2;
  }
  // (the all-causal base differs from the teacher only by rounding: ~1e-8)
  CHECK(sink.final("search/L1/h1/window:8") == Approx(switched).margin(1e-7));
  CHECK(sink.final("search/L1/h1/window:8") > 0);
  CHECK(sink.final("search/mean_cost") == Approx(1.0));  // budget 1: causal loses nothing, every head keeps it

  double cheapest = 1;
  for (const auto& m : candidates)
    cheapest = std::min(cheapest, attnlab::masks::density(m, 64, 16).block / attnlab::masks::density("causal", 64, 16).block);
  for (const double budget : {0.6, 0.0}) {
    INFO("budget " << budget);
    auto s = searching(budget);
    std::size_t n = 0;
    MemorySink out;
    REQUIRE(search_heads(*s, teacher, draw_from(n), 0.0, 1, out));
    CHECK(out.final("search/mean_cost") <= std::max(budget, cheapest) + 1e-9);
    if (budget == 0.0) CHECK(out.final("search/mean_cost") == Approx(cheapest));
  }
  // The random control: the same budget, seeded scores, nothing measured; seeds differ.
  auto random_choice = [&](std::uint64_t seed) {
    auto s = teacher.copy_with_attention([&](const BackendInit& init) {
      return registry().create("blend", init,
                               {{"candidates", std::string("causal,window:8,sink:1|window:2")}, {"selection", std::string("random")},
                                {"budget", 0.85}, {"execution", std::string("block_sparse")}, {"tile", std::int64_t(16)}});
    }, seed);
    std::size_t n = 0;
    MemorySink out;
    REQUIRE(search_heads(*s, teacher, draw_from(n), 0.0, seed, out));
    CHECK(out.final("search/mean_cost") <= 0.85 + 1e-9);
    CHECK(out.metrics.count("search/L0/h0/causal") == 0);
    std::vector<double> chosen;
    for (const auto& b : s->backends())
      for (const auto& stat : b->statistics())
        if (stat.name.rfind("weight/", 0) == 0) chosen.push_back(stat.value);
    return chosen;
  };
  CHECK(random_choice(3) == random_choice(3));
  std::set<std::vector<double>> distinct;
  for (std::uint64_t seed = 1; seed <= 4; ++seed) distinct.insert(random_choice(seed));
  CHECK(distinct.size() > 1);
  // A model that does not search is left alone, nothing recorded.
  auto plain = teacher.copy_with_attention(dense());
  std::size_t none = 0;
  MemorySink quiet;
  CHECK_FALSE(search_heads(*plain, teacher, draw_from(none), 0.0, 1, quiet));
  CHECK(quiet.metrics.empty());
}

TEST_CASE("distill trial: blend search chooses before training and deploys its choice within the budget", "[search]") {
  const auto dir = fresh_dir("distill_search");
  const auto data = tiny_data(dir);
  auto spec = tiny_distill("blend");
  spec.steps = 2;
  spec.seq_len = 64;  // 4 tiles of 16: window:8 keeps 7 of causal's 10
  spec.eval.seq_lens = {64};
  spec.eval.prompts = {};
  spec.backend_params = {{"candidates", std::string("causal,window:8")}, {"selection", std::string("search")},
                         {"budget", 0.8}, {"search_batches", std::int64_t(2)}, {"execution", std::string("block_sparse")},
                         {"tile", std::int64_t(16)}};
  MemorySink sink;
  run_distill(data, tiny_teacher(), spec, plugin_factory(), (dir / "results").string(), sink);
  CHECK(sink.final("search/mean_cost") <= 0.8 + 1e-9);
  CHECK(sink.metrics.count("search/L1/h1/window:8") == 1);
  // What was evaluated is what the search chose: the kernel ran at most the budget's tiles.
  CHECK(sink.final("eval/T64/causal_fraction") == Approx(sink.final("search/mean_cost")));
  fs::remove_all(dir);
}
