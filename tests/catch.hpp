#pragma once
// Catch2 for every test file, v2 (Debian 12: one header) or v3 (Debian 13: catch_all.hpp,
// where the string matcher Contains became ContainsSubstring). Tests write the v2 spellings:
// Approx, Catch::Contains, Catch::StartsWith, Catch::EndsWith.
//
// Include it after any torch header: glog's CHECK (which torch pulls in) would silently
// replace Catch's, and a failed CHECK would then abort the test binary.
#undef CHECK
#if defined(ATTNLAB_CATCH2_V3)
#include <catch2/catch_all.hpp>

#include <string>

using Catch::Approx;
namespace Catch {
inline Matchers::StringContainsMatcher Contains(const std::string& text,
                                                CaseSensitive sensitive = CaseSensitive::Yes) {
  return Matchers::ContainsSubstring(text, sensitive);
}
using Matchers::EndsWith;
using Matchers::StartsWith;
}  // namespace Catch
#else
#include <catch2/catch.hpp>
#endif
