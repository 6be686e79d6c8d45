#include "runtime/bench_spec.hpp"

namespace attnlab {

const keys::Table<BenchGrid>& bench_keys() {
  static const auto keys = [] {
    using SpecType = BenchGrid;
    keys::Table<SpecType> table;
    ATTNLAB_BENCH_KEYS(ATTNLAB_KEY_ROW)
    return table;
  }();
  return keys;
}

}  // namespace attnlab
