// Token cache and windowed datasets (see token_data.hpp).
#include "text/token_data.hpp"

#include "base/hash.hpp"

#include <spdlog/spdlog.h>

#include <cctype>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <stdexcept>

#include <unistd.h>

namespace attnlab::text {

using base::fnv1a64;
using base::hex64;
namespace fs = std::filesystem;
namespace {

constexpr char kMagic[8] = {'A', 'T', 'N', 'L', 'T', 'O', 'K', '1'};

std::string file_safe(std::string s) {
  for (char& c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) c = '_';
  }
  return s;
}

std::uint64_t content_hash(std::string_view text, const Tokenizer& tokenizer) {
  return fnv1a64(text, fnv1a64(tokenizer.fingerprint()));
}

// The cached ids, or nothing if the file is absent or does not match (then we re-tokenize).
std::optional<std::vector<std::int32_t>> read_cache(const fs::path& path, std::uint64_t hash) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  char magic[8];
  std::uint64_t stored_hash = 0, count = 0;
  in.read(magic, 8);
  in.read(reinterpret_cast<char*>(&stored_hash), sizeof stored_hash);
  in.read(reinterpret_cast<char*>(&count), sizeof count);
  const std::uintmax_t expected_size = 24 + count * sizeof(std::int32_t);
  if (!in || std::memcmp(magic, kMagic, 8) != 0 || stored_hash != hash || fs::file_size(path) != expected_size) {
    spdlog::warn("token cache {} is not a valid cache for this text and tokenizer; re-tokenizing", path.string());
    return std::nullopt;
  }
  std::vector<std::int32_t> ids(count);
  in.read(reinterpret_cast<char*>(ids.data()), static_cast<std::streamsize>(count * sizeof(std::int32_t)));
  if (!in) return std::nullopt;
  return ids;
}

// Write to a private temporary file, then rename: concurrent runs never see half a file.
void write_cache(const fs::path& path, std::uint64_t hash, const std::vector<std::int32_t>& ids) {
  fs::create_directories(path.parent_path());
  const fs::path tmp = path.string() + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    const std::uint64_t count = ids.size();
    out.write(kMagic, 8);
    out.write(reinterpret_cast<const char*>(&hash), sizeof hash);
    out.write(reinterpret_cast<const char*>(&count), sizeof count);
    out.write(reinterpret_cast<const char*>(ids.data()), static_cast<std::streamsize>(count * sizeof(std::int32_t)));
    if (!out) throw std::runtime_error("cannot write token cache " + tmp.string());
  }
  fs::rename(tmp, path);
}

}  // namespace

std::string token_cache_path(const std::string& corpus_name, const std::string& split, std::string_view text,
                             const Tokenizer& tokenizer, const TokenCacheOptions& options) {
  const std::string file = "tokens-" + file_safe(corpus_name) + "-" + file_safe(split) + "-" +
                           file_safe(tokenizer.name()) + "-" + hex64(content_hash(text, tokenizer)) + ".bin";
  return (fs::path(options.cache_dir) / file).string();
}

std::vector<std::int32_t> tokenize_cached(const std::string& corpus_name, const std::string& split,
                                          std::string_view text, const Tokenizer& tokenizer,
                                          const TokenCacheOptions& options) {
  if (tokenizer.vocab_size() > std::numeric_limits<std::int32_t>::max()) {
    throw std::invalid_argument("tokenizer " + tokenizer.name() + " has more ids than int32 holds");
  }
  const std::uint64_t hash = content_hash(text, tokenizer);
  const std::string path = options.cache_dir.empty() ? "" : token_cache_path(corpus_name, split, text, tokenizer, options);
  if (!path.empty()) {
    if (auto cached = read_cache(path, hash)) return std::move(*cached);
  }
  const auto start = std::chrono::steady_clock::now();
  const std::vector<std::int64_t> ids64 = tokenizer.encode(text);
  const std::vector<std::int32_t> ids(ids64.begin(), ids64.end());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  spdlog::info("tokenized {}/{} with {}: {} bytes -> {} tokens in {:.2f} s{}", corpus_name, split, tokenizer.name(),
               text.size(), ids.size(), seconds, path.empty() ? "" : " (cached in " + path + ")");
  if (!path.empty()) write_cache(path, hash, ids);
  return ids;
}

TokenDataset::TokenDataset(std::vector<std::int32_t> ids, std::int64_t vocab_size)
    : ids_(std::move(ids)), vocab_size_(vocab_size) {}

void TokenDataset::check_seq_len(std::int64_t seq_len) const {
  if (seq_len < 1 || seq_len + 1 > num_tokens()) {
    throw std::invalid_argument("sequence length " + std::to_string(seq_len) + " needs windows of " +
                                std::to_string(seq_len + 1) + " tokens; this split has " +
                                std::to_string(num_tokens()) + " (allowed: 1 <= seq_len < number of tokens)");
  }
}

at::Tensor TokenDataset::random_windows(std::int64_t batch, std::int64_t seq_len, std::mt19937_64& rng) const {
  check_seq_len(seq_len);
  if (batch < 1) throw std::invalid_argument("batch size " + std::to_string(batch) + " must be >= 1");
  const std::uint64_t offsets = static_cast<std::uint64_t>(num_tokens() - seq_len);  // valid starts: [0, offsets)
  at::Tensor out = at::empty({batch, seq_len + 1}, at::kLong);
  std::int64_t* dst = out.data_ptr<std::int64_t>();
  for (std::int64_t b = 0; b < batch; ++b) {
    const std::int32_t* src = ids_.data() + rng() % offsets;
    for (std::int64_t t = 0; t <= seq_len; ++t) *dst++ = src[t];
  }
  return out;
}

std::int64_t TokenDataset::num_eval_windows(std::int64_t seq_len) const {
  if (seq_len < 1) throw std::invalid_argument("sequence length " + std::to_string(seq_len) + " must be >= 1");
  return num_tokens() > seq_len ? (num_tokens() - 1) / seq_len : 0;
}

at::Tensor TokenDataset::eval_windows(std::int64_t first, std::int64_t count, std::int64_t seq_len) const {
  if (count < 1)
    throw std::invalid_argument("eval windows: count " + std::to_string(count) + " must be at least 1");
  std::vector<std::int64_t> indices;
  for (std::int64_t k = first; k < first + count; ++k) indices.push_back(k);
  return eval_windows_at(indices, seq_len);
}

at::Tensor TokenDataset::eval_windows_at(const std::vector<std::int64_t>& indices, std::int64_t seq_len) const {
  const std::int64_t total = num_eval_windows(seq_len);
  for (const auto k : indices)
    if (k < 0 || k >= total)
      throw std::invalid_argument("eval window " + std::to_string(k) + " outside the " + std::to_string(total) +
                                  " windows of length " + std::to_string(seq_len + 1));
  at::Tensor out = at::empty({static_cast<std::int64_t>(indices.size()), seq_len + 1}, at::kLong);
  std::int64_t* dst = out.data_ptr<std::int64_t>();
  for (const auto k : indices) {
    const std::int32_t* src = ids_.data() + k * seq_len;
    for (std::int64_t t = 0; t <= seq_len; ++t) *dst++ = src[t];
  }
  return out;
}

TokenDataset load_token_dataset(const CorpusSplits& splits, const std::string& split, const Tokenizer& tokenizer,
                                const TokenCacheOptions& options) {
  const std::string* text = split == "train" ? &splits.train
                            : split == "valid" ? &splits.valid
                            : split == "test"  ? &splits.test
                                               : nullptr;
  if (!text) throw std::invalid_argument("unknown split '" + split + "' (allowed: train, valid, test)");
  return TokenDataset(tokenize_cached(splits.name, split, *text, tokenizer, options), tokenizer.vocab_size());
}

}  // namespace attnlab::text
