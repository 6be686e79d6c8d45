#pragma once
// The mask expression grammar (attnlab/masks.hpp), parsed without tensors: canonical spelling
// and the parsed terms the mask library builds tensors from. Kept apart from masks.cpp so
// that a fuzzer can drive it without LibTorch (tests/fuzz).
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

namespace attnlab::masks::grammar {

enum class Kind { Causal, Sink, Window, Stride, Block, Random };  // also the canonical order

struct Atom {
  Kind kind = Kind::Causal;
  std::int64_t a = 0;  // window W | stride S | sink N | block B | random tile B
  std::int64_t b = 0;  // stride window W (0 = unbounded) | random seed
  double p = 0.0;      // random keep probability

  std::string spelling() const;
  auto key() const { return std::make_tuple(static_cast<int>(kind), a, b, p); }
  bool operator<(const Atom& o) const { return key() < o.key(); }
  bool operator==(const Atom& o) const { return key() == o.key(); }
};

using Term = std::vector<Atom>;  // intersection
using Expr = std::vector<Term>;  // union

// Sorted, duplicate-free terms; throws std::invalid_argument naming the offending part.
Expr parse(const std::string& expression);
std::string spell(const Expr& expr);
std::vector<std::string> split(const std::string& text, char sep);
std::string strip_spaces(const std::string& text);
[[noreturn]] void fail(const std::string& part, const std::string& why);  // std::invalid_argument

}  // namespace attnlab::masks::grammar
