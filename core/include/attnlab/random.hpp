#pragma once
// Seeded randomness for a backend's initialisation, independent of the global RNG (so two
// backends built with one seed are identical whatever else ran before).
#include <attnlab/export.hpp>

#include <ATen/core/Generator.h>

#include <cstdint>

namespace attnlab {

// A CPU generator seeded with `seed`, for at::randn(..., generator, options) and friends.
ATTNLAB_API at::Generator seeded_generator(std::uint64_t seed);

}  // namespace attnlab
