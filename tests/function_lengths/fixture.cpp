// Fixture for tools/function_lengths.py (see selftest.py): braces in comments, literals and
// initializers must not count, lambdas count toward their function. { <- a comment brace
#include <string>
#define BLOCK(x) { x; }

namespace fixture {

struct Point {
  int x = 0, y{0};
  Point(int a, int b) : x(a), y{b} {
    auto twice = [&] { return 2 * x; };
    x = twice();
  }
  int sum() const noexcept(true) { return x + y; }
};

auto trailing(int a) -> decltype(a + 1) {
  return a + 1;
}

const auto at_file_scope = [](int a) {
  return a;
};

// Exactly the limit: 80 lines from its opening brace to its closing one (blank lines count).
int at_limit() {
  int x = 0;
  std::string s = "{ not a brace";
  const char* raw = R"json({"a": "}"})json";
  char c = '{';
  long big = 1'000'000;
  auto lambda = [](int v) {
    return v + 1;
  };
  for (int i = 0; i < 2; ++i) {
    x += lambda(i);
  }


































































  return x + int(s.size() + big + c) + raw[0];
}

// One line over the limit.
int too_long() {
  int x = 0;













































































  return x;
}

}  // namespace fixture
