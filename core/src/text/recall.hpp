#pragma once
// Long-range associative recall (MQAR, as in the Zoology / Based papers) spliced into real text.
//
// A window of T + 1 ids (inputs [0, T), next-token targets [1, T]) carries a *record* of P
// key->value pairs early and P *queries* late. With S = floor(T / 4) and s = floor(S / P):
//
//   record: pair j at positions p_j = j*s + r_j (key) and p_j + 1 (value),  r_j in [0, s - 2]
//   query:  pair j at positions q_j = T - S + j*s + r'_j (key) and q_j + 1 (its value again)
//
// so every record sits in [0, S) and every query in [T - S, T): the distance q - p is at least
// T - 2S + 1 > T/2 by construction. The model must predict the value at input position q (its
// target is the value id): exact prediction there is recall. Keys are distinct within a window,
// queries ask them in a shuffled order, and the text around them stays the corpus's.
//
// Ids: with the bytes tokenizer keys are bytes 128 .. 128+K-1 and values the next V bytes, which
// plain-ASCII text (Brown) never uses; any corpus byte in that range is remapped to '?' first
// (remap_reserved, counted). With a BPE tokenizer keys and values are reserved ids appended after
// its vocabulary (the model's vocabulary grows by K + V).
//
// Train and eval records are disjoint: a record (its set of key->value pairs) is an eval record
// when a hash of it is 0 mod kEvalRecordShare, and training draws only the others (rejection).
// Every key and value is equally likely in both, so no prior learned in training favours or
// penalises the eval answers; chance is 1 / V. (Disjoint *pairs*, e.g. by parity, were tried
// first and are wrong: a teacher that learned the training parity as a prior scored 0.000 on
// eval records, below chance, while its training batches were at 0.3.)
#include "text/token_data.hpp"
#include "text/tokenizer.hpp"

#include <ATen/ATen.h>

#include <cstdint>
#include <random>
#include <vector>

namespace attnlab::text {

struct RecallSpec {
  std::int64_t pairs = 0;    // P; 0 = no recall task
  double fraction = 0.5;     // training windows that carry a record
  std::int64_t keys = 64;    // K distinct key symbols
  std::int64_t values = 64;  // V distinct value symbols
  bool enabled() const { return pairs > 0; }
};

struct RecallIds {
  std::int64_t first_key = 0, first_value = 0, keys = 0, values = 0;
  std::int64_t vocab_size = 0;  // of the model: the tokenizer's, plus K + V for BPE
  bool in_text_range = false;   // bytes: the ids are bytes a corpus could contain
};

// Throws std::invalid_argument when the spec does not fit (bytes: K + V > 128).
RecallIds recall_ids(const RecallSpec& spec, const Tokenizer& tokenizer);

// Replaces every id of the reserved range in `ids` with `fallback`; returns how many.
std::int64_t remap_reserved(std::vector<std::int32_t>& ids, const RecallIds& r, std::int32_t fallback);

// Smallest T whose quarter holds P pairs (2 ids each): T >= 8P.
std::int64_t min_recall_seq_len(std::int64_t pairs);

enum class RecallSplit { train, eval };

constexpr std::uint64_t kEvalRecordShare = 16;
// Whether the record of these pairs (key and value indices within their ranges) is an eval record.
bool is_eval_record(const std::int64_t* keys, const std::int64_t* values, std::int64_t pairs);

struct RecallBatch {
  at::Tensor tokens;    // [B, T + 1] int64, records spliced in
  at::Tensor answer;    // [B, T] bool: input position is a query (its target is the value)
  at::Tensor distance;  // [B, T] int64: query position - its record key's position (0 elsewhere)
};

// Splices one record into each row b of `windows` ([B, T + 1] int64, modified in place) for
// which carry[b] is true; rng draws the positions, keys, values and query order.
RecallBatch splice_records(at::Tensor windows, const std::vector<bool>& carry, const RecallSpec& spec,
                           const RecallIds& ids, RecallSplit split, std::mt19937_64& rng);

// The eval record of window `index` at length T does not depend on any model or trial seed:
// every teacher and student is asked the very same questions.
std::uint64_t eval_record_seed(std::int64_t index, std::int64_t T);

// Training windows: B random windows of the split, each carrying a record with probability
// spec.fraction (none when the task is off or T < 8P: answer is then all false).
RecallBatch recall_train_batch(const TokenDataset& data, std::int64_t B, std::int64_t T, const RecallSpec& spec,
                               const RecallIds& ids, std::mt19937_64& rng);

// Held-out windows `indices` (TokenDataset::eval_windows_at), every one carrying its eval record.
RecallBatch recall_eval_batch(const TokenDataset& data, const std::vector<std::int64_t>& indices, std::int64_t T,
                              const RecallSpec& spec, const RecallIds& ids);

}  // namespace attnlab::text
