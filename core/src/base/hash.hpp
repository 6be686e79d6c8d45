#pragma once
// FNV-1a 64: a fixed, platform-independent hash for cache keys and document splits (not for
// security). std::hash is implementation-defined, so it would change splits across compilers.
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace attnlab::base {

constexpr std::uint64_t kFnvOffset = 14695981039346656037ull;

inline std::uint64_t fnv1a64(std::string_view data, std::uint64_t hash = kFnvOffset) {
  for (unsigned char c : data) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

inline std::string hex64(std::uint64_t value) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(value));
  return buf;
}

}  // namespace attnlab::base
