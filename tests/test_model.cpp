// Model files: sha256, the safetensors reader/writer (round trip and every kind of corruption),
// Hugging Face GPT-2 loading (Conv1D transposes checked against a hand-written float64 forward
// pass), and attnlab's own checkpoints.
#include "model/gpt2.hpp"
#include "model/bootstrap.hpp"
#include "model/safetensors.hpp"
#include "model/sha256.hpp"

#include <attnlab/registry.hpp>

#include <ATen/ATen.h>
#include "catch.hpp"

#include "support.hpp"

#include <cmath>
#include <random>
#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;
using namespace attnlab;
using namespace attnlab::model;

namespace {

using attnlab::test::fresh_dir;
using attnlab::test::registry;

// A file with the given header text and data bytes, length prefix as the format wants.
void write_raw(const fs::path& path, const std::string& header, const std::string& data, std::uint64_t length) {
  std::ofstream out(path, std::ios::binary);
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((length >> (8 * i)) & 0xff));
  out << header << data;
}
void write_raw(const fs::path& path, const std::string& header, const std::string& data) {
  write_raw(path, header, data, header.size());
}

std::string read_error(const fs::path& path) {
  try {
    safetensors::read(path.string());
  } catch (const safetensors::Error& e) {
    return e.what();
  }
  return "";
}


AttentionFactory dense_math() {
  return [](const BackendInit& init) { return registry().create("dense", init, {{"execution", std::string("math")}}); };
}

}  // namespace

TEST_CASE("sha256 matches the FIPS 180-4 examples") {
  REQUIRE(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  REQUIRE(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  REQUIRE(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  // One million 'a' fed in uneven pieces exercises the block buffering.
  Sha256 h;
  const std::string piece(997, 'a');
  std::size_t left = 1000000;
  while (left > 0) {
    const auto n = std::min(left, piece.size());
    h.update(piece.data(), n);
    left -= n;
  }
  REQUIRE(h.hex_digest() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("safetensors round-trips every dtype, empty and scalar tensors, and metadata") {
  const auto dir = fresh_dir("model_roundtrip");
  std::map<std::string, at::Tensor> tensors = {
      {"f32", at::randn({3, 5})},
      {"f64", at::randn({2, 3, 4}, at::kDouble)},
      {"f16", at::randn({7}).to(at::kHalf)},
      {"bf16", at::randn({2, 2}).to(at::kBFloat16)},
      {"i64", at::arange(10, at::kLong).view({2, 5})},
      {"i32", at::arange(6, at::kInt)},
      {"u8", at::arange(4, at::kByte)},
      {"bool", at::tensor({1, 0, 1}, at::kInt).to(at::kBool)},
      {"empty", at::zeros({0, 4})},
      {"scalar", at::tensor(3.5)},
      {"strided", at::randn({4, 6}).t()},  // not contiguous: written row-major
  };
  const auto path = (dir / "x.safetensors").string();
  safetensors::write(path, tensors, {{"who", "test"}, {"n", "11"}});

  auto file = safetensors::read(path);
  REQUIRE(file.metadata == std::map<std::string, std::string>{{"who", "test"}, {"n", "11"}});
  REQUIRE(file.tensors.size() == tensors.size());
  for (const auto& [name, t] : tensors) {
    INFO(name);
    const auto& back = file.tensors.at(name);
    REQUIRE(back.scalar_type() == t.scalar_type());
    REQUIRE(back.sizes() == t.sizes());
    REQUIRE(at::equal(back, t));
  }
  // Data starts 8-byte aligned.
  REQUIRE(safetensors::read_header(path).data_start % 8 == 0);

  auto as_float = safetensors::read(path, {/*to_float32=*/true});
  REQUIRE(as_float.tensors.at("f16").scalar_type() == at::kFloat);
  REQUIRE(as_float.tensors.at("bf16").scalar_type() == at::kFloat);
  REQUIRE(as_float.tensors.at("f64").scalar_type() == at::kFloat);
  REQUIRE(as_float.tensors.at("i64").scalar_type() == at::kLong);
  REQUIRE(at::allclose(as_float.tensors.at("f16"), tensors.at("f16").to(at::kFloat)));
  fs::remove_all(dir);
}

TEST_CASE("safetensors rejects truncated and corrupt files with the file and tensor named") {
  const auto dir = fresh_dir("model_corrupt");
  const auto good = dir / "good.safetensors";
  safetensors::write(good.string(), {{"a", at::ones({4})}, {"b", at::ones({2, 2})}});
  std::string bytes;
  {
    std::ifstream in(good, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const auto bad = dir / "bad.safetensors";
  auto error_of = [&](const std::string& content) {
    std::ofstream(bad, std::ios::binary | std::ios::trunc) << content;
    return read_error(bad);
  };
  using Catch::Contains;

  SECTION("the good file reads") { REQUIRE(read_error(good).empty()); }
  SECTION("truncated data") {
    const auto e = error_of(bytes.substr(0, bytes.size() - 3));
    REQUIRE_THAT(e, Contains(bad.string()) && Contains("'b'") && Contains("truncated"));
  }
  SECTION("truncated inside the header") {
    REQUIRE_THAT(error_of(bytes.substr(0, 20)), Contains("header length") && Contains("exceeds"));
  }
  SECTION("shorter than the length prefix") { REQUIRE_THAT(error_of("abc"), Contains("8-byte header length")); }
  SECTION("absurd header length") {
    write_raw(bad, "{}", "", 1ull << 40);
    REQUIRE_THAT(read_error(bad), Contains("exceeds the limit"));
  }
  SECTION("header is not JSON") {
    write_raw(bad, "{\"a\": [1, 2", "");
    REQUIRE_THAT(read_error(bad), Contains("not valid JSON"));
  }
  SECTION("header is not an object") {
    write_raw(bad, "[1, 2, 3]", "");
    REQUIRE_THAT(read_error(bad), Contains("not an object"));
  }
  SECTION("offsets outside the data region") {
    write_raw(bad, R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})", std::string(8, '\0'));
    REQUIRE_THAT(read_error(bad), Contains("'w'") && Contains("outside the data region"));
  }
  SECTION("byte count disagrees with dtype and shape") {
    write_raw(bad, R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, '\0'));
    REQUIRE_THAT(read_error(bad), Contains("'w'") && Contains("needs 12 bytes"));
  }
  SECTION("overlapping tensors") {
    write_raw(bad,
              R"({"u":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"v":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
              std::string(12, '\0'));
    REQUIRE_THAT(read_error(bad), Contains("overlap"));
  }
  SECTION("a hole in the data region") {
    write_raw(bad, R"({"u":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", std::string(8, '\0'));
    REQUIRE_THAT(read_error(bad), Contains("'u'") && Contains("hole"));
  }
  SECTION("trailing bytes") {
    write_raw(bad, R"({"u":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", std::string(8, '\0'));
    REQUIRE_THAT(read_error(bad), Contains("after the last tensor"));
  }
  SECTION("unsupported dtype") {
    write_raw(bad, R"({"u":{"dtype":"U64","shape":[1],"data_offsets":[0,8]}})", std::string(8, '\0'));
    REQUIRE_THAT(read_error(bad), Contains("'u'") && Contains("unsupported dtype") && Contains("F32"));
  }
  SECTION("negative shape and malformed offsets") {
    write_raw(bad, R"({"u":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", std::string(4, '\0'));
    REQUIRE_THAT(read_error(bad), Contains("non-negative"));
    write_raw(bad, R"({"u":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", std::string(4, '\0'));
    REQUIRE_THAT(read_error(bad), Contains("data_offsets"));
    write_raw(bad, R"({"u":{"dtype":"F32","shape":[1]}})", std::string(4, '\0'));
    REQUIRE_THAT(read_error(bad), Contains("lacks \"data_offsets\""));
  }
  SECTION("missing file") { REQUIRE_THAT(read_error(dir / "nope.safetensors"), Contains("cannot open")); }
  fs::remove_all(dir);
}

namespace {

// GPT-2 forward pass written out with plain float64 tensor ops on HF-layout weights
// (Conv1D: y = x @ W + b with W [in, out]).
at::Tensor manual_gpt2(const std::map<std::string, at::Tensor>& hf, const GPT2Config& c, const at::Tensor& idx) {
  auto w = [&](const std::string& name) { return hf.at(name).to(at::kDouble); };
  auto layer_norm = [&](const at::Tensor& x, const std::string& prefix) {
    auto mean = x.mean(-1, true);
    auto var = (x - mean).pow(2).mean(-1, true);
    return (x - mean) / (var + c.layer_norm_epsilon).sqrt() * w(prefix + ".weight") + w(prefix + ".bias");
  };
  auto conv1d = [&](const at::Tensor& x, const std::string& prefix) {
    return at::matmul(x, w(prefix + ".weight")) + w(prefix + ".bias");
  };
  const auto T = idx.size(1), C = c.n_embd, H = c.n_head, D = C / H;
  auto x = w("wte.weight").index_select(0, idx.reshape(-1)).view({idx.size(0), T, C});
  if (!c.rotary()) x = x + w("wpe.weight").narrow(0, 0, T);
  // Rotary: pair (i, i + D/2) as the complex number x_i + j x_{i+D/2}, times e^{j t theta_i}.
  auto angles = at::empty({T, D / 2}, at::kDouble);
  for (std::int64_t t = 0; t < T; ++t)
    for (std::int64_t i = 0; i < D / 2; ++i) angles[t][i] = double(t) * std::pow(10000.0, -2.0 * double(i) / double(D));
  auto rotate = [&](const at::Tensor& h) {
    if (!c.rotary()) return h;
    auto z = at::complex(h.narrow(-1, 0, D / 2), h.narrow(-1, D / 2, D / 2)) * at::polar(at::ones_like(angles), angles);
    return at::cat({at::real(z), at::imag(z)}, -1);
  };
  for (int l = 0; l < c.n_layer; ++l) {
    const auto p = "h." + std::to_string(l);
    auto qkv = conv1d(layer_norm(x, p + ".ln_1"), p + ".attn.c_attn");
    auto heads = [&](int i) { return qkv.narrow(2, i * C, C).view({-1, T, H, D}).permute({0, 2, 1, 3}); };
    auto scores = at::matmul(rotate(heads(0)), rotate(heads(1)).transpose(-1, -2)) / std::sqrt(double(D));
    auto future = at::ones({T, T}, at::kBool).triu(1);
    auto y = at::matmul(at::softmax(scores.masked_fill(future, -INFINITY), -1), heads(2));
    x = x + conv1d(y.permute({0, 2, 1, 3}).reshape({-1, T, C}), p + ".attn.c_proj");
    auto h = conv1d(layer_norm(x, p + ".ln_2"), p + ".mlp.c_fc");
    h = 0.5 * h * (1 + at::tanh(std::sqrt(2.0 / M_PI) * (h + 0.044715 * h.pow(3))));
    x = x + conv1d(h, p + ".mlp.c_proj");
  }
  return at::matmul(layer_norm(x, "ln_f"), w("wte.weight").t());
}

std::map<std::string, at::Tensor> hf_weights(const GPT2Config& c) {
  const auto C = c.n_embd;
  std::map<std::string, at::Tensor> t = {{"wte.weight", at::randn({c.vocab_size, C}) * 0.5},
                                         {"wpe.weight", at::randn({c.n_positions, C}) * 0.5},
                                         {"ln_f.weight", 1 + 0.1 * at::randn({C})},
                                         {"ln_f.bias", 0.1 * at::randn({C})}};
  for (int l = 0; l < c.n_layer; ++l) {
    const auto p = "h." + std::to_string(l);
    t[p + ".ln_1.weight"] = 1 + 0.1 * at::randn({C});
    t[p + ".ln_1.bias"] = 0.1 * at::randn({C});
    t[p + ".ln_2.weight"] = 1 + 0.1 * at::randn({C});
    t[p + ".ln_2.bias"] = 0.1 * at::randn({C});
    t[p + ".attn.c_attn.weight"] = at::randn({C, 3 * C}) * 0.3;  // Conv1D [in, out]
    t[p + ".attn.c_attn.bias"] = at::randn({3 * C}) * 0.1;
    t[p + ".attn.c_proj.weight"] = at::randn({C, C}) * 0.3;
    t[p + ".attn.c_proj.bias"] = at::randn({C}) * 0.1;
    t[p + ".mlp.c_fc.weight"] = at::randn({C, 4 * C}) * 0.3;
    t[p + ".mlp.c_fc.bias"] = at::randn({4 * C}) * 0.1;
    t[p + ".mlp.c_proj.weight"] = at::randn({4 * C, C}) * 0.3;
    t[p + ".mlp.c_proj.bias"] = at::randn({C}) * 0.1;
    t[p + ".attn.bias"] = at::ones({1, 1, c.n_positions, c.n_positions}).tril();  // HF's mask buffer
  }
  return t;
}

void write_hf_dir(const fs::path& dir, const GPT2Config& c, const std::map<std::string, at::Tensor>& weights,
                  const std::string& prefix) {
  auto json = c.to_json();
  json["model_type"] = "gpt2";
  json["activation_function"] = "gelu_new";
  json["n_inner"] = nullptr;
  std::ofstream(dir / "config.json") << json.dump(2);
  std::map<std::string, at::Tensor> prefixed;
  for (const auto& [k, v] : weights) prefixed[prefix + k] = v;
  safetensors::write((dir / "model.safetensors").string(), prefixed);
}

}  // namespace

TEST_CASE("Hugging Face GPT-2 weights load with Conv1D transposed and match a manual forward pass") {
  at::manual_seed(7);
  GPT2Config c;
  c.vocab_size = 37, c.n_positions = 11, c.n_embd = 12, c.n_layer = 2, c.n_head = 3;
  const auto weights = hf_weights(c);
  const auto idx = at::randint(0, c.vocab_size, {2, 9}, at::kLong);
  const auto expected = manual_gpt2(weights, c, idx);

  for (const std::string prefix : {"", "transformer."}) {
    INFO("key prefix '" << prefix << "'");
    const auto dir = fresh_dir("model_hf");
    write_hf_dir(dir, c, weights, prefix);
    auto model = load_hf_gpt2(dir.string(), dense_math());
    REQUIRE(model->config().n_embd == c.n_embd);
    torch::NoGradGuard no_grad;
    auto logits = model->forward(idx).to(at::kDouble);
    REQUIRE(logits.sizes() == expected.sizes());
    REQUIRE(at::allclose(logits, expected, 1e-4, 1e-4));
    // load_any dispatches a directory and its model.safetensors the same way.
    REQUIRE(at::allclose(load_any(dir.string(), dense_math())->forward(idx), logits.to(at::kFloat)));
    REQUIRE(at::allclose(load_any((dir / "model.safetensors").string(), dense_math())->forward(idx),
                         logits.to(at::kFloat)));
    fs::remove_all(dir);
  }
}

TEST_CASE("Hugging Face loading refuses weights that disagree with config.json") {
  using Catch::Contains;
  at::manual_seed(1);
  GPT2Config c;
  c.vocab_size = 17, c.n_positions = 8, c.n_embd = 8, c.n_layer = 1, c.n_head = 2;
  const auto dir = fresh_dir("model_hf_bad");
  auto message = [&](const std::map<std::string, at::Tensor>& w) {
    write_hf_dir(dir, c, w, "");
    try {
      load_hf_gpt2(dir.string(), dense_math());
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  auto weights = hf_weights(c);
  REQUIRE(message(weights).empty());

  auto transposed = weights;  // stored as torch Linear [out, in] instead of Conv1D [in, out]
  transposed["h.0.attn.c_attn.weight"] = weights["h.0.attn.c_attn.weight"].t().contiguous();
  REQUIRE_THAT(message(transposed), Contains("h.0.attn.c_attn.weight") && Contains("Conv1D"));

  auto missing = weights;
  missing.erase("h.0.ln_2.bias");
  REQUIRE_THAT(message(missing), Contains("missing") && Contains("h.0.ln_2.bias"));

  auto extra_layer = weights;
  extra_layer["h.1.ln_1.weight"] = at::ones({c.n_embd});
  REQUIRE_THAT(message(extra_layer), Contains("unexpected tensor 'h.1.ln_1.weight'"));

  auto wrong_vocab = weights;
  wrong_vocab["wte.weight"] = at::randn({c.vocab_size + 1, c.n_embd});
  REQUIRE_THAT(message(wrong_vocab), Contains("wte.weight") && Contains("[18, 8]"));
  fs::remove_all(dir);
}

TEST_CASE("attnlab checkpoints round-trip weights, config and metadata") {
  GPT2Config c;
  c.vocab_size = 29, c.n_positions = 16, c.n_embd = 16, c.n_layer = 2, c.n_head = 4;
  GPT2 model(c, dense_math(), /*seed=*/3);
  const auto dir = fresh_dir("model_ckpt");
  const auto path = (dir / "model.safetensors").string();
  save_checkpoint(model, path, {{"attnlab.tokenizer", "bytes"}});
  REQUIRE(safetensors::read_header(path).metadata.at("attnlab.tokenizer") == "bytes");

  auto loaded = load_any(path, dense_math());
  REQUIRE(loaded->config().to_json() == c.to_json());
  for (const auto& [name, w] : model.weights()) REQUIRE(at::equal(loaded->weights().at(name), w));
  const auto idx = at::randint(0, c.vocab_size, {3, 10}, at::kLong);
  torch::NoGradGuard no_grad;
  REQUIRE(at::equal(loaded->forward(idx), model.forward(idx)));

  // Different seeds give different models (so the equality above means something).
  GPT2 other(c, dense_math(), /*seed=*/4);
  REQUIRE_FALSE(at::equal(other.forward(idx), model.forward(idx)));
  // A plain safetensors file without attnlab's config is refused with the reason.
  const auto plain = (dir / "plain.safetensors").string();
  safetensors::write(plain, {{"x", at::ones({1})}});
  REQUIRE_THROWS_WITH(load_any(plain, dense_math()), Catch::Contains("neither an attnlab checkpoint"));
  fs::remove_all(dir);
}

TEST_CASE("rotary positions match a float64 complex-number reference, stay causal and round-trip", "[model]") {
  at::manual_seed(11);
  GPT2Config c;
  c.vocab_size = 23, c.n_positions = 32, c.n_embd = 24, c.n_layer = 2, c.n_head = 2;  // D = 12
  c.positions = "rope";
  auto weights = hf_weights(c);
  weights.erase("wpe.weight");  // no position table
  const auto dir = fresh_dir("model_rope");
  write_hf_dir(dir, c, weights, "");
  auto model = load_hf_gpt2(dir.string(), dense_math());
  REQUIRE(model->config().rotary());
  REQUIRE(model->weights().count("wpe.weight") == 0);
  torch::NoGradGuard no_grad;
  const auto idx = at::randint(0, c.vocab_size, {2, 27}, at::kLong);  // odd T, below n_positions
  const auto got = model->forward(idx).to(at::kDouble);
  const auto want = manual_gpt2(weights, c, idx);
  REQUIRE(at::allclose(got, want, 1e-4, 1e-4));
  // Without the rotation the reference differs: the check above sees the positions.
  auto unrotated = c;
  unrotated.positions = "learned";
  auto w_zero = weights;
  w_zero["wpe.weight"] = at::zeros({c.n_positions, c.n_embd});
  REQUIRE_FALSE(at::allclose(manual_gpt2(w_zero, unrotated, idx), want, 1e-3, 1e-3));

  // Causal: changing tokens from position 15 on leaves logits before it unchanged.
  auto perturbed = idx.clone();
  perturbed.narrow(1, 15, 12).random_(0, c.vocab_size);
  const auto changed = model->forward(perturbed);
  REQUIRE(at::equal(changed.narrow(1, 0, 15), model->forward(idx).narrow(1, 0, 15)));
  REQUIRE_FALSE(at::allclose(changed.narrow(1, 15, 12), model->forward(idx).narrow(1, 15, 12)));

  // attnlab's checkpoint keeps the option: the reload computes the same.
  const auto path = (dir / "rope.safetensors").string();
  save_checkpoint(*model, path);
  auto loaded = load_any(path, dense_math());
  REQUIRE(loaded->config().to_json().at("positions") == "rope");
  REQUIRE(at::equal(loaded->forward(idx), model->forward(idx)));
  // GPT-2's own config stays as it was (teacher cache keys are hashed from it).
  REQUIRE_FALSE(GPT2Config{}.to_json().contains("positions"));
  c.positions = "alibi";
  REQUIRE_THROWS_WITH(c.validate(), Catch::Contains("positions = \"alibi\""));
  fs::remove_all(dir);
}

TEST_CASE("a safetensors header whose numbers overflow is refused as a bad file, not an escaped exception",
          "[model][safetensors][fuzz]") {
  // Found by tests/fuzz: nlohmann::json throws out_of_range (not parse_error) for 555e5555.
  const std::string finding = std::string(ATTNLAB_TEST_DATA) + "/fuzz_findings/safetensors_number_overflow.bin";
  REQUIRE_THROWS_AS(attnlab::safetensors::read_header(finding), attnlab::safetensors::Error);
  REQUIRE_THROWS_WITH(attnlab::safetensors::read_header(finding), Catch::Contains("header is not valid JSON"));
}

TEST_CASE("bootstrap intervals over windows bracket the value and shrink with more windows", "[model][eval]") {
  // Windows whose student NLL is the teacher's plus noise: the interval must hold the point
  // estimate, and four times the windows must narrow it.
  std::mt19937_64 rng(5);
  std::normal_distribution<double> noise(0.0, 2.0);
  auto make = [&](int n) {
    std::vector<attnlab::model::WindowStats> w;
    for (int i = 0; i < n; ++i) w.push_back({100.0, 101.0 + noise(rng), 0.5, 60.0, 64.0, 64.0});
    return attnlab::model::summarize(w, 1000, 1);
  };
  const auto few = make(40), many = make(160);
  for (const auto* s : {&few, &many}) {
    REQUIRE(s->delta_ppl.lo <= s->delta_ppl.value);
    REQUIRE(s->delta_ppl.value <= s->delta_ppl.hi);
    REQUIRE(s->rel_delta_ppl.lo <= s->rel_delta_ppl.hi);
    REQUIRE(s->kl.value == Approx(0.5 / 64.0));
    REQUIRE(s->agreement.value == Approx(60.0 / 64.0));
    REQUIRE(s->teacher_bpb == Approx(100.0 / 64.0 / std::log(2.0)));
  }
  REQUIRE(many.delta_ppl.hi - many.delta_ppl.lo < 0.75 * (few.delta_ppl.hi - few.delta_ppl.lo));
}
