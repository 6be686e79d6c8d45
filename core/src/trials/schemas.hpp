#pragma once
// What each trial kind declares of its sweeps: its grid keys, its own sections and the
// [sweep] defaults it changes, all from the keys' one declarations. No LibTorch here, so the
// sweep loader's fuzzer checks files against the very same schemas.
#include "runtime/config.hpp"

#include <vector>

namespace attnlab::trials {

KindSchema bench_schema();
KindSchema distill_schema();
std::vector<KindSchema> all_schemas();  // every registered kind, in registration order

}  // namespace attnlab::trials
