// Long-range recall records spliced into text windows (see recall.hpp).
#include "text/recall.hpp"

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>

namespace attnlab::text {

RecallIds recall_ids(const RecallSpec& spec, const Tokenizer& tokenizer) {
  if (spec.keys < 2 || spec.values < 2)
    throw std::invalid_argument("[data] recall_keys and recall_values must be >= 2");
  if (spec.pairs > spec.keys)
    throw std::invalid_argument("[data] recall_pairs = " + std::to_string(spec.pairs) +
                                " needs as many distinct keys: recall_keys = " + std::to_string(spec.keys));
  RecallIds r;
  r.keys = spec.keys;
  r.values = spec.values;
  if (tokenizer.name() == "bytes") {
    // Bytes 128..255: never in ASCII text, so the symbols cannot collide with Brown's.
    if (spec.keys + spec.values > 128)
      throw std::invalid_argument("[data] recall_keys + recall_values = " + std::to_string(spec.keys + spec.values) +
                                  " must be <= 128 with the bytes tokenizer (ids 128..255)");
    r.first_key = 128;
    r.vocab_size = tokenizer.vocab_size();
    r.in_text_range = true;
  } else {
    r.first_key = tokenizer.vocab_size();
    r.vocab_size = tokenizer.vocab_size() + spec.keys + spec.values;
  }
  r.first_value = r.first_key + spec.keys;
  return r;
}

std::int64_t remap_reserved(std::vector<std::int32_t>& ids, const RecallIds& r, std::int32_t fallback) {
  const std::int64_t lo = r.first_key, hi = r.first_value + r.values;
  std::int64_t n = 0;
  for (auto& id : ids)
    if (id >= lo && id < hi) id = fallback, ++n;
  return n;
}

std::int64_t min_recall_seq_len(std::int64_t pairs) { return 8 * pairs; }

std::uint64_t eval_record_seed(std::int64_t index, std::int64_t T) {
  return 0x9E3779B97F4A7C15ULL * static_cast<std::uint64_t>(index + 1) ^ (static_cast<std::uint64_t>(T) << 20);
}

namespace {

std::int64_t draw(std::mt19937_64& rng, std::int64_t n) { return static_cast<std::int64_t>(rng() % std::uint64_t(n)); }

}  // namespace

bool is_eval_record(const std::int64_t* keys, const std::int64_t* values, std::int64_t pairs) {
  std::uint64_t h = 1469598103934665603ULL;  // FNV-1a over the pairs, in key order
  std::vector<std::pair<std::int64_t, std::int64_t>> sorted;
  for (std::int64_t j = 0; j < pairs; ++j) sorted.emplace_back(keys[j], values[j]);
  std::sort(sorted.begin(), sorted.end());
  for (const auto& [k, v] : sorted)
    for (const std::int64_t x : {k, v}) h = (h ^ static_cast<std::uint64_t>(x)) * 1099511628211ULL;
  return h % kEvalRecordShare == 0;
}

namespace {

// One record and its queries into row w (T + 1 ids); marks answers and distances of that row.
void splice_row(std::int64_t* w, bool* answer, std::int64_t* distance, std::int64_t T, const RecallSpec& spec,
                const RecallIds& ids, RecallSplit split, std::mt19937_64& rng) {
  const std::int64_t P = spec.pairs, S = T / 4, s = S / P;
  std::vector<std::int64_t> keys(static_cast<std::size_t>(ids.keys));
  std::iota(keys.begin(), keys.end(), 0);
  for (std::int64_t j = 0; j < P; ++j) std::swap(keys[j], keys[j + draw(rng, ids.keys - j)]);  // P distinct
  std::vector<std::int64_t> values(P), key_pos(P);
  do
    for (std::int64_t j = 0; j < P; ++j) values[j] = draw(rng, ids.values);
  while (is_eval_record(keys.data(), values.data(), P) != (split == RecallSplit::eval));
  for (std::int64_t j = 0; j < P; ++j) {
    key_pos[j] = j * s + draw(rng, s - 1);
    w[key_pos[j]] = ids.first_key + keys[j];
    w[key_pos[j] + 1] = ids.first_value + values[j];
  }
  std::vector<std::int64_t> order(P);
  std::iota(order.begin(), order.end(), 0);
  for (std::int64_t j = P - 1; j > 0; --j) std::swap(order[j], order[draw(rng, j + 1)]);
  for (std::int64_t j = 0; j < P; ++j) {
    const std::int64_t q = T - S + j * s + draw(rng, s - 1), asked = order[j];
    w[q] = ids.first_key + keys[asked];
    w[q + 1] = ids.first_value + values[asked];
    answer[q] = true;
    distance[q] = q - key_pos[asked];
  }
}

}  // namespace

RecallBatch splice_records(at::Tensor windows, const std::vector<bool>& carry, const RecallSpec& spec,
                           const RecallIds& ids, RecallSplit split, std::mt19937_64& rng) {
  TORCH_CHECK(windows.dim() == 2 && windows.scalar_type() == at::kLong && windows.is_contiguous(),
              "splice_records: windows must be contiguous [B, T + 1] int64");
  const std::int64_t B = windows.size(0), T = windows.size(1) - 1;
  TORCH_CHECK(static_cast<std::int64_t>(carry.size()) == B, "splice_records: carry has ", carry.size(),
              " rows, windows ", B);
  TORCH_CHECK(spec.enabled() && T >= min_recall_seq_len(spec.pairs), "splice_records: T = ", T, " holds no ",
              spec.pairs, " pairs (T >= 8 * recall_pairs = ", min_recall_seq_len(spec.pairs), ")");
  RecallBatch out;
  out.tokens = windows;
  out.answer = at::zeros({B, T}, at::kBool);
  out.distance = at::zeros({B, T}, at::kLong);
  for (std::int64_t b = 0; b < B; ++b)
    if (carry[b])
      splice_row(windows.data_ptr<std::int64_t>() + b * (T + 1), out.answer.data_ptr<bool>() + b * T,
                 out.distance.data_ptr<std::int64_t>() + b * T, T, spec, ids, split, rng);
  return out;
}

RecallBatch recall_train_batch(const TokenDataset& data, std::int64_t B, std::int64_t T, const RecallSpec& spec,
                               const RecallIds& ids, std::mt19937_64& rng) {
  auto windows = data.random_windows(B, T, rng);
  std::vector<bool> carry(static_cast<std::size_t>(B), false);
  if (!spec.enabled() || T < min_recall_seq_len(spec.pairs))
    return {windows, at::zeros({B, T}, at::kBool), at::zeros({B, T}, at::kLong)};
  // A fixed-point draw (not std::bernoulli_distribution): the same rows on every platform.
  for (std::int64_t b = 0; b < B; ++b) carry[b] = double(rng() >> 11) * 0x1.0p-53 < spec.fraction;
  return splice_records(windows, carry, spec, ids, RecallSplit::train, rng);
}

RecallBatch recall_eval_batch(const TokenDataset& data, const std::vector<std::int64_t>& indices, std::int64_t T,
                              const RecallSpec& spec, const RecallIds& ids) {
  auto windows = data.eval_windows_at(indices, T);
  std::vector<at::Tensor> tokens, answer, distance;
  for (std::size_t i = 0; i < indices.size(); ++i) {
    std::mt19937_64 rng(eval_record_seed(indices[i], T));
    auto one = splice_records(windows.narrow(0, std::int64_t(i), 1).contiguous(), {true}, spec, ids,
                              RecallSplit::eval, rng);
    tokens.push_back(one.tokens);
    answer.push_back(one.answer);
    distance.push_back(one.distance);
  }
  return {at::cat(tokens), at::cat(answer), at::cat(distance)};
}

}  // namespace attnlab::text
