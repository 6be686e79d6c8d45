// The long-range recall task (text/recall.hpp, model/recall_eval.hpp, model/gates.hpp): where
// records and queries sit, that train and eval records are disjoint, that Brown leaves the
// reserved bytes free, that a window mask cannot see a record beyond its reach, and that a
// distill trial with the task reports recall and the teacher's gates.
#include "model/distill.hpp"
#include "model/gpt2.hpp"
#include "model/recall_eval.hpp"
#include "text/corpus.hpp"
#include "text/recall.hpp"

#include <ATen/ATen.h>
#include "catch.hpp"

#include "support.hpp"

#include <filesystem>
#include <fstream>
#include <random>
#include <set>

namespace fs = std::filesystem;
using namespace attnlab;
using namespace attnlab::model;
using namespace attnlab::text;

namespace {

RecallSpec four_pairs() {
  RecallSpec s;
  s.pairs = 4;
  s.keys = 16;
  s.values = 16;
  return s;
}

// Plain "text": ids 32..126, so any id >= 128 in a window is the record's.
TokenDataset ascii_dataset(std::int64_t n) {
  std::vector<std::int32_t> ids;
  std::mt19937 rng(3);
  for (std::int64_t i = 0; i < n; ++i) ids.push_back(32 + std::int32_t(rng() % 95));
  return TokenDataset(std::move(ids), 256);
}

}  // namespace

TEST_CASE("recall: Brown never uses the bytes the bytes tokenizer reserves for keys and values") {
  const auto splits = load_corpus({"brown"});
  const auto ids = recall_ids(four_pairs(), BytesTokenizer());
  REQUIRE(ids.first_key == 128);
  for (const std::string* text : {&splits.train, &splits.valid, &splits.test}) {
    REQUIRE(!text->empty());
    std::int64_t reserved = 0;
    for (unsigned char c : *text) reserved += c >= ids.first_key && c < ids.first_value + ids.values;
    REQUIRE(reserved == 0);
  }
}

TEST_CASE("recall: text bytes in the reserved range are remapped, BPE gets ids past its vocabulary") {
  auto spec = four_pairs();
  const auto ids = recall_ids(spec, BytesTokenizer());
  std::vector<std::int32_t> text = {65, 130, 200, 159, 160, 10};
  REQUIRE(remap_reserved(text, ids, '?') == 2);  // 130 and 159 (keys 128..143, values 144..159), not 160, 200
  REQUIRE(text == std::vector<std::int32_t>{65, '?', 200, '?', 160, 10});
  const auto gpt2 = make_tokenizer("gpt2");
  const auto bpe = recall_ids(spec, *gpt2);
  REQUIRE(bpe.first_key == gpt2->vocab_size());
  REQUIRE(bpe.first_value == gpt2->vocab_size() + 16);
  REQUIRE(bpe.vocab_size == gpt2->vocab_size() + 32);
  REQUIRE(!bpe.in_text_range);
  spec.keys = spec.values = 100;
  REQUIRE_THROWS_WITH(recall_ids(spec, BytesTokenizer()), Catch::Contains("must be <= 128"));
}

TEST_CASE("recall: records early, queries late, every distance above T/2, answers are the record's values") {
  const auto data = ascii_dataset(5000);
  const auto spec = four_pairs();
  const auto ids = recall_ids(spec, BytesTokenizer());
  const std::int64_t T = 64;
  std::mt19937_64 rng(7);
  auto windows = data.random_windows(3, T, rng);
  const auto plain = windows.clone();
  const auto rb = splice_records(windows, {true, false, true}, spec, ids, RecallSplit::train, rng);
  REQUIRE(rb.tokens.narrow(0, 1, 1).equal(plain.narrow(0, 1, 1)));  // a row without a record is untouched
  REQUIRE(rb.answer[1].sum().item<std::int64_t>() == 0);
  for (const std::int64_t b : {0, 2}) {
    const auto* w = rb.tokens[b].contiguous().data_ptr<std::int64_t>();
    std::map<std::int64_t, std::int64_t> record;  // key -> value, from the first quarter
    std::map<std::int64_t, std::int64_t> record_pos;
    for (std::int64_t t = 0; t < T / 4; ++t)
      if (w[t] >= ids.first_key && w[t] < ids.first_value) record[w[t]] = w[t + 1], record_pos[w[t]] = t;
    REQUIRE(record.size() == 4);
    std::int64_t queries = 0;
    for (std::int64_t t = 0; t < T; ++t) {
      if (!rb.answer[b][t].item<bool>()) continue;
      ++queries;
      REQUIRE(t >= T - T / 4);
      REQUIRE(record.count(w[t]) == 1);
      REQUIRE(w[t + 1] == record.at(w[t]));  // the target at a query is its value
      REQUIRE(rb.distance[b][t].item<std::int64_t>() == t - record_pos.at(w[t]));
      REQUIRE(rb.distance[b][t].item<std::int64_t>() > T / 2);
    }
    REQUIRE(queries == 4);
    for (std::int64_t t = T / 4; t < T - T / 4; ++t) REQUIRE(w[t] == plain[b][t].item<std::int64_t>());
  }
}

TEST_CASE("recall: train and eval records are disjoint with the same pair statistics, eval records are fixed") {
  const auto data = ascii_dataset(20000);
  const auto spec = four_pairs();
  const auto ids = recall_ids(spec, BytesTokenizer());
  const std::int64_t T = 64;
  // Each row's record as a sorted list of (key, value) ids.
  auto records_of = [&](const RecallBatch& rb) {
    std::set<std::vector<std::pair<std::int64_t, std::int64_t>>> records;
    const auto w = rb.tokens.contiguous();
    for (std::int64_t b = 0; b < w.size(0); ++b) {
      std::vector<std::pair<std::int64_t, std::int64_t>> record;
      for (std::int64_t t = 0; t < T; ++t)
        if (rb.answer[b][t].item<bool>()) record.push_back({w[b][t].item<std::int64_t>(), w[b][t + 1].item<std::int64_t>()});
      std::sort(record.begin(), record.end());
      if (!record.empty()) records.insert(record);
    }
    return records;
  };
  auto eval_share = [&](const std::set<std::vector<std::pair<std::int64_t, std::int64_t>>>& records) {
    double eval = 0;
    for (const auto& record : records) {
      std::vector<std::int64_t> k, v;
      for (const auto& [key, value] : record) k.push_back(key - ids.first_key), v.push_back(value - ids.first_value);
      eval += is_eval_record(k.data(), v.data(), std::int64_t(k.size()));
    }
    return eval / double(records.size());
  };
  std::mt19937_64 rng(1);
  RecallSpec all = spec;
  all.fraction = 1.0;
  const auto train_batch = recall_train_batch(data, 200, T, all, ids, rng);
  const auto train = records_of(train_batch);
  std::vector<std::int64_t> indices;
  for (std::int64_t i = 0; i < 200; ++i) indices.push_back(i);
  const auto eval_batch = recall_eval_batch(data, indices, T, spec, ids);
  const auto eval = records_of(eval_batch);
  REQUIRE(train.size() == 200);
  REQUIRE(eval.size() == 200);
  REQUIRE(eval_share(train) == 0.0);
  REQUIRE(eval_share(eval) == 1.0);
  // The same statistics: every value id appears in both, with similar frequencies per parity.
  auto odd_values = [&](const RecallBatch& rb) {
    const auto targets = rb.tokens.narrow(1, 1, T).masked_select(rb.answer) - ids.first_value;
    return targets.remainder(2).sum().item<double>() / double(targets.numel());
  };
  REQUIRE(std::abs(odd_values(train_batch) - 0.5) < 0.08);
  REQUIRE(std::abs(odd_values(eval_batch) - 0.5) < 0.08);
  REQUIRE(recall_eval_batch(data, indices, T, spec, ids).tokens.equal(eval_batch.tokens));
  // fraction: about half of the training windows carry a record.
  std::mt19937_64 rng2(2);
  const auto half = recall_train_batch(data, 400, T, spec, ids, rng2);
  const auto carried = half.answer.any(1).sum().item<double>() / 400.0;
  REQUIRE(carried > 0.4);
  REQUIRE(carried < 0.6);
}

TEST_CASE("recall: a window mask cannot see a record beyond its reach, full attention does") {
  const auto data = ascii_dataset(5000);
  const auto spec = four_pairs();
  const auto ids = recall_ids(spec, BytesTokenizer());
  const std::int64_t T = 128;  // distances > 64; 2 layers of window:16 reach back 2 * 15 = 30
  GPT2Config c;
  c.vocab_size = 256, c.n_positions = T, c.n_embd = 32, c.n_layer = 2, c.n_head = 2;
  auto make = [&](const std::string& pattern) {
    return std::make_shared<GPT2>(c, [pattern](const BackendInit& init) {
      return test::registry().create("masks", init, {{"pattern", pattern}});
    }, 11);
  };
  auto windowed = make("window:16"), full = make("causal");
  windowed->eval(), full->eval();
  const auto rb = recall_eval_batch(data, {0, 1}, T, spec, ids);
  auto perturbed = rb.tokens.clone();
  for (std::int64_t b = 0; b < 2; ++b)  // every record value, to another value
    for (std::int64_t t = 0; t < T / 4; ++t) {
      const auto v = perturbed[b][t].item<std::int64_t>();
      if (v >= ids.first_value) perturbed[b][t] = ids.first_value + (v - ids.first_value + 1) % ids.values;
    }
  REQUIRE(!perturbed.equal(rb.tokens));
  torch::NoGradGuard no_grad;
  auto at_queries = [&](GPT2& m, const at::Tensor& tokens) {
    return m.forward(tokens.narrow(1, 0, T)).index({rb.answer});  // [queries, V]
  };
  REQUIRE(at::allclose(at_queries(*windowed, rb.tokens), at_queries(*windowed, perturbed), 0, 0));
  REQUIRE(!at::allclose(at_queries(*full, rb.tokens), at_queries(*full, perturbed), 1e-6, 1e-6));
}

TEST_CASE("recall: accuracy counts exact values at the query positions, per distance bin, with intervals") {
  const auto data = ascii_dataset(5000);
  const auto spec = four_pairs();
  const auto ids = recall_ids(spec, BytesTokenizer());
  const std::int64_t T = 64;
  std::vector<std::int64_t> indices;
  for (std::int64_t i = 0; i < 20; ++i) indices.push_back(i);
  const auto rb = recall_eval_batch(data, indices, T, spec, ids);
  // An oracle: a one-hot at every next token; wrong (the next value) in window 0 at every query.
  auto targets = rb.tokens.narrow(1, 1, T).clone();
  targets[0].masked_fill_(rb.answer[0], ids.first_key);
  const auto logits = at::one_hot(targets, 256).to(at::kFloat);
  std::vector<RecallWindow> stats;
  recall_stats(logits, rb, stats);
  REQUIRE(stats.size() == 20);
  REQUIRE(stats[0].correct == 0);
  REQUIRE(stats[1].correct == 4);
  REQUIRE(stats[1].asked == 4);
  double binned = 0;
  for (int bin = 0; bin < kRecallBins; ++bin) binned += stats[1].bin_asked[bin];
  REQUIRE(binned == 4);
  const auto s = summarize_recall(stats, 500, 1);
  REQUIRE(s.acc.value == Approx(19.0 / 20.0));
  REQUIRE(s.acc.lo < s.acc.value);
  REQUIRE(s.acc.hi == Approx(1.0));
  REQUIRE(recall_bin_lo(T, 0) == 32);
  REQUIRE(recall_bin_lo(T, 3) == 56);
}

TEST_CASE("recall: distill_loss adds answer_weight tau^2 KL at the answer positions") {
  at::manual_seed(0);
  const auto s = at::randn({2, 8, 16}), t = at::randn({2, 8, 16});
  const auto y = at::randint(0, 16, {2, 8}, at::kLong);
  auto answer = at::zeros({2, 8}, at::kBool);
  answer[0][5] = true, answer[1][7] = true;
  DistillSpec spec;
  spec.temperature = 2.0;
  const auto plain = distill_loss(s, t, y, {}, spec, answer).loss.item<double>();
  spec.answer_weight = 3.0;
  const auto weighted = distill_loss(s, t, y, {}, spec, answer).loss.item<double>();
  const auto lt = at::log_softmax(t / 2.0, -1), ls = at::log_softmax(s / 2.0, -1);
  const auto kl_at = (lt.exp() * (lt - ls)).sum(-1);
  const double answer_kl = 0.5 * (kl_at[0][5].item<double>() + kl_at[1][7].item<double>());
  REQUIRE(weighted - plain == Approx(3.0 * 4.0 * answer_kl).epsilon(1e-4));
  REQUIRE(distill_loss(s, t, y, {}, spec).loss.item<double>() == Approx(plain));  // no answers: no term
}

TEST_CASE("recall: a distill trial with the task reports recall beside bits per byte, and the teacher's gates") {
  const auto dir = test::fresh_dir("distill_recall");
  {
    std::ofstream out(dir / "corpus.txt");
    std::mt19937 rng(5);
    const std::vector<std::string> words = {"the jury", "it was", "a city", "the vote", "no end", "she saw"};
    for (int line = 0; line < 600; ++line) out << words[rng() % 6] << " " << words[rng() % 6] << ".\n";
  }
  DataSpec data;
  data.corpus = "text:" + (dir / "corpus.txt").string();
  data.recall_pairs = 2, data.recall_keys = 8, data.recall_values = 8;
  TeacherSpec teacher;
  teacher.n_layer = 2, teacher.n_head = 2, teacher.n_embd = 32, teacher.block_size = 64;
  teacher.steps = 40, teacher.batch = 8, teacher.seq_len = 32, teacher.lr = 1e-2, teacher.answer_weight = 1.0;
  DistillSpec spec;
  spec.backend = "dense";
  spec.seq_len = 32, spec.batch = 4, spec.steps = 2;
  spec.eval.seq_lens = {32};
  spec.eval.windows = 8;
  spec.eval.sample_tokens = 0;
  const BackendFactory factory = [](const std::string& name, const BackendInit& init,
                                    const std::map<std::string, ParamValue>& params) {
    return test::registry().create(name, init, params);
  };
  test::MemorySink sink;
  run_distill(data, teacher, spec, factory, (dir / "results").string(), sink);
  REQUIRE(sink.final("eval/T32/recall_chance") == Approx(1.0 / 8));
  for (const std::string name : {"recall_acc", "teacher_recall_acc", "recall_acc_d16"}) {
    INFO(name);
    REQUIRE(sink.final("eval/T32/" + name) >= 0);
    REQUIRE(sink.final("eval/T32/" + name + "_lo") <= sink.final("eval/T32/" + name));
    REQUIRE(sink.final("eval/T32/" + name + "_hi") <= 1.0);
  }
  // The dense control is the teacher: same answers.
  REQUIRE(sink.final("eval/T32/recall_acc") == sink.final("eval/T32/teacher_recall_acc"));
  REQUIRE(sink.final("eval/T32/teacher_bpb") > 0);  // plain windows, measured separately
  REQUIRE(sink.final("teacher/gate_T") == 32);
  REQUIRE(sink.final("teacher/gate_bpb") > 0);
  REQUIRE(sink.final("teacher/gate_recall_acc_2x") >= 0);
  REQUIRE(sink.curve("teacher/train_recall_acc").size() >= 2);
  REQUIRE_THAT(sink.infos.at("teacher.gates"), Catch::Contains("window:128"));
  // At 2T = 64 a window of 128 sees everything: the window gate cannot pass, so a trial that
  // requires the gates fails before its student trains.
  REQUIRE(sink.final("teacher/gate_passed") == 0);
  teacher.require_gates = true;
  test::MemorySink strict;
  REQUIRE_THROWS_WITH(run_distill(data, teacher, spec, factory, (dir / "results").string(), strict),
                      Catch::Contains("misses a gate"));
  REQUIRE(strict.metrics.count("train/loss") == 0);
  fs::remove_all(dir);
}
