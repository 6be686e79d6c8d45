#pragma once
// What each trial kind declares of its sweeps: its grid keys, its own sections and the
// [sweep] defaults it changes, all from the keys' one declarations (trials/<kind>/schema.cpp).
// No LibTorch here, so the sweep loader's fuzzer checks files against the very same schemas.
#include "runtime/config.hpp"

#include <vector>

namespace attnlab::trials {

#define ATTNLAB_TRIAL_KIND(name) KindSchema name##_schema();
#include "trials/kinds.def"
#undef ATTNLAB_TRIAL_KIND

std::vector<KindSchema> all_schemas();  // every built-in kind, in kinds.def's order

}  // namespace attnlab::trials
