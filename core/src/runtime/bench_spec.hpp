#pragma once
// The [grid] keys of a bench sweep, each declared once (base/keys.hpp); no LibTorch here, so
// the sweep loader and its fuzzer can use the table.
#include "base/keys.hpp"

#include <cstdint>
#include <string>

namespace attnlab {

#define ATTNLAB_BENCH_KEYS(KEY)                                                                    \
  KEY(std::int64_t, seq_len, 1024, keys::range(1, 1 << 20), "T: query and key length")           \
  KEY(std::int64_t, batch, 1, keys::range(1, 4096), "B")                                          \
  KEY(std::int64_t, heads, 8, keys::range(1, 1024), "H")                                          \
  KEY(std::int64_t, head_dim, 64, keys::range(1, 1024), "D")                                      \
  KEY(std::string, pass, "fwd", keys::one_of({"fwd", "fwd+bwd"}),                                 \
      "fwd: one forward under no_grad; fwd+bwd: forward and the gradients of q, k, v and parameters") \
  KEY(std::string, dtype, "float32", keys::one_of({"float32", "float64"}), "dtype of q, k and v") \
  KEY(std::string, mode, "soft", keys::one_of({"soft", "hard"}),                                  \
      "soft: the backend as it trains; hard: set_hard(true) first, what a deployed student runs")
struct BenchGrid {
  ATTNLAB_BENCH_KEYS(ATTNLAB_KEY_FIELD)
};

const keys::Table<BenchGrid>& bench_keys();

}  // namespace attnlab
