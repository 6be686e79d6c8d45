#pragma once
// Small text helpers shared by the layers above (header-only, no LibTorch: the database
// commands of bin/attnlab may use them).
#include <cmath>
#include <ctime>
#include <sstream>
#include <string>
#include <vector>

namespace attnlab::base {

// "a, b, c": the parts with `separator` between them.
inline std::string join(const std::vector<std::string>& parts, const std::string& separator) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) out += (i ? separator : "") + parts[i];
  return out;
}

// A number as a person writes it in a range: "inf", "-inf", 1024 (no ".0"), 0.001.
inline std::string number_text(double x) {
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  std::ostringstream out;
  if (std::abs(x) < 1e15 && x == std::floor(x)) out << static_cast<long long>(x);
  else out << x;
  return out.str();
}

// The current UTC time in a strftime `format` ("%Y-%m-%dT%H:%M:%SZ" for the database).
inline std::string utc_now(const char* format) {
  const std::time_t t = std::time(nullptr);
  char buffer[64];
  std::strftime(buffer, sizeof buffer, format, std::gmtime(&t));
  return buffer;
}

}  // namespace attnlab::base
