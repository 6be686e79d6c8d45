#pragma once
// How much of the T x S score matrix a computation covers: per element, and per tile (a tile
// counts when any element in it is computed). Speed follows blocks.
#include <attnlab/export.hpp>

#include <cstdint>

namespace attnlab {

struct Density {
  double element = 0.0;
  double block = 0.0;
};

// The causal mask's density at T (element and tile level).
ATTNLAB_API Density causal_density(std::int64_t T, std::int64_t tile);

}  // namespace attnlab
