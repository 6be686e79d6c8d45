#include "runtime/bench_spec.hpp"

namespace attnlab {

ATTNLAB_KEY_TABLE(bench_keys, BenchGrid, ATTNLAB_BENCH_KEYS)

}  // namespace attnlab
