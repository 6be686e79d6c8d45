#pragma once
// Tokenized corpora for training and evaluation.
//
// tokenize_cached() tokenizes one split once and keeps the ids in
//   <cache_dir>/tokens-<corpus>-<split>-<tokenizer>-<hash>.bin
// where <hash> covers the split's text and the tokenizer's fingerprint (its vocabulary files),
// so an edited corpus or vocabulary never reads stale ids. File layout (little-endian):
//   "ATNLTOK1" | uint64 hash | uint64 count | count x int32 ids
//
// TokenDataset hands out windows of T+1 consecutive ids, [B, T+1] int64 (inputs are
// [:, :T], next-token targets [:, 1:]): random ones for training and sequential,
// non-overlapping ones (stride T, so every token is predicted once) for evaluation.
#include "text/corpus.hpp"
#include "text/tokenizer.hpp"

#include <ATen/ATen.h>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace attnlab::text {

struct TokenCacheOptions {
  std::string cache_dir = "results/cache";  // relative to the working directory; "" = no caching
};

std::string token_cache_path(const std::string& corpus_name, const std::string& split, std::string_view text,
                             const Tokenizer& tokenizer, const TokenCacheOptions& options = {});

std::vector<std::int32_t> tokenize_cached(const std::string& corpus_name, const std::string& split,
                                          std::string_view text, const Tokenizer& tokenizer,
                                          const TokenCacheOptions& options = {});

class TokenDataset {
 public:
  TokenDataset(std::vector<std::int32_t> ids, std::int64_t vocab_size);

  std::int64_t num_tokens() const { return static_cast<std::int64_t>(ids_.size()); }
  std::int64_t vocab_size() const { return vocab_size_; }
  const std::vector<std::int32_t>& ids() const { return ids_; }

  // [batch, seq_len + 1] int64, each row starting at an offset drawn uniformly from rng
  // (offset = rng() % count: the same windows for the same seed on every platform, unlike
  // std::uniform_int_distribution).
  at::Tensor random_windows(std::int64_t batch, std::int64_t seq_len, std::mt19937_64& rng) const;

  // Windows k = 0 .. num_eval_windows-1 cover ids [k*seq_len, k*seq_len + seq_len + 1);
  // 0 windows when the split is shorter than seq_len + 1 tokens.
  std::int64_t num_eval_windows(std::int64_t seq_len) const;
  // Windows first .. first+count-1 as [count, seq_len + 1] int64.
  at::Tensor eval_windows(std::int64_t first, std::int64_t count, std::int64_t seq_len) const;
  // The windows with these indices (each in [0, num_eval_windows)), in this order.
  at::Tensor eval_windows_at(const std::vector<std::int64_t>& indices, std::int64_t seq_len) const;

 private:
  void check_seq_len(std::int64_t seq_len) const;
  std::vector<std::int32_t> ids_;
  std::int64_t vocab_size_;
};

// split: "train", "valid" or "test" of splits, tokenized through the cache.
TokenDataset load_token_dataset(const CorpusSplits& splits, const std::string& split, const Tokenizer& tokenizer,
                                const TokenCacheOptions& options = {});

}  // namespace attnlab::text
