// Catch2 for every test file, v2 (Debian 12: one header) or v3 (Debian 13: catch_all.hpp,
// where the string matcher Contains became ContainsSubstring). Tests write the v2 spellings:
// Approx, Catch::Contains, Catch::StartsWith, Catch::EndsWith.
//
// glog's CHECK (which torch pulls in) silently replaces Catch's when a torch header comes
// after Catch: a failed CHECK then aborts the test binary and a passing one is not counted.
// So this file has no include guard around its last lines: each inclusion (support.hpp
// includes it after its torch headers) puts Catch's CHECK back.
#ifndef ATTNLAB_TEST_CATCH_HPP
#define ATTNLAB_TEST_CATCH_HPP
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
#endif  // ATTNLAB_TEST_CATCH_HPP

#undef CHECK
#define CHECK(...) INTERNAL_CATCH_TEST("CHECK", Catch::ResultDisposition::ContinueOnFailure, __VA_ARGS__)
