// The mask expression grammar; see mask_grammar.hpp and attnlab/masks.hpp.
#include "sdk/mask_grammar.hpp"

#include <attnlab/mask_expr.hpp>
#include <attnlab/params.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace attnlab::masks {
namespace grammar {

std::string Atom::spelling() const {
  switch (kind) {
    case Kind::Causal: return "causal";
    case Kind::Sink: return "sink:" + std::to_string(a);
    case Kind::Window: return "window:" + std::to_string(a);
    case Kind::Stride: return "stride:" + std::to_string(a) + (b ? ":" + std::to_string(b) : "");
    case Kind::Block: return "block:" + std::to_string(a);
    case Kind::Random: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.17g", p);
      // Shortest spelling that reads back to the same double.
      for (int digits = 1; digits <= 17; ++digits) {
        char shorter[32];
        std::snprintf(shorter, sizeof shorter, "%.*g", digits, p);
        if (std::strtod(shorter, nullptr) == p) {
          std::snprintf(buf, sizeof buf, "%s", shorter);
          break;
        }
      }
      return "random:" + std::string(buf) + ":" + std::to_string(a) + ":" + std::to_string(b);
    }
  }
  return "?";
}

const char* const kGrammarHint =
    "expected causal, window:W, stride:S[:W], sink:N, block:B or random:P[:B[:SEED]], "
    "joined by '&' (and) and '|' (or)";

[[noreturn]] void fail(const std::string& part, const std::string& why) {
  throw std::invalid_argument(part + ": " + why);
}

namespace {

std::int64_t parse_int(const std::string& atom, const std::string& field, const std::string& text,
                       std::int64_t min_value) {
  if (text.empty() || text.size() > 12 || !std::all_of(text.begin(), text.end(), ::isdigit))
    fail(atom, field + " must be an integer >= " + std::to_string(min_value) + ", got '" + text + "'");
  const std::int64_t value = std::stoll(text);
  if (value < min_value) fail(atom, field + " must be >= " + std::to_string(min_value));
  return value;
}

Atom parse_atom(const std::string& atom) {
  if (atom.empty()) fail("(empty)", std::string("missing mask between operators; ") + kGrammarHint);
  const auto fields = split(atom, ':');
  const std::string& name = fields[0];
  const std::size_t n_args = fields.size() - 1;
  auto want_args = [&](std::size_t lo, std::size_t hi, const char* usage) {
    if (n_args < lo || n_args > hi) fail(atom, std::string("expected ") + usage);
  };
  Atom out;
  if (name == "causal") {
    want_args(0, 0, "'causal' without arguments");
    out.kind = Kind::Causal;
  } else if (name == "window") {
    want_args(1, 1, "window:W");
    out.kind = Kind::Window;
    out.a = parse_int(atom, "W", fields[1], 1);
  } else if (name == "stride") {
    want_args(1, 2, "stride:S or stride:S:W");
    out.kind = Kind::Stride;
    out.a = parse_int(atom, "S", fields[1], 1);
    if (n_args == 2) out.b = parse_int(atom, "W", fields[2], 1);
  } else if (name == "sink") {
    want_args(1, 1, "sink:N");
    out.kind = Kind::Sink;
    out.a = parse_int(atom, "N", fields[1], 1);
  } else if (name == "block") {
    want_args(1, 1, "block:B");
    out.kind = Kind::Block;
    out.a = parse_int(atom, "B", fields[1], 1);
  } else if (name == "random") {
    want_args(1, 3, "random:P[:B[:SEED]]");
    out.kind = Kind::Random;
    const std::string& p_text = fields[1];
    char* end = nullptr;
    out.p = p_text.empty() ? NAN : std::strtod(p_text.c_str(), &end);
    if (p_text.empty() || end != p_text.c_str() + p_text.size() || !(out.p >= 0.0 && out.p <= 1.0))
      fail(atom, "P must be a probability in [0, 1], got '" + p_text + "'");
    out.a = n_args >= 2 ? parse_int(atom, "B", fields[2], 1) : 64;
    out.b = n_args >= 3 ? parse_int(atom, "SEED", fields[3], 0) : 0;
  } else {
    fail(atom, "unknown mask '" + name + "'; " + kGrammarHint);
  }
  return out;
}

}  // namespace

std::string strip_spaces(const std::string& text) {
  std::string out;
  for (char c : text)
    if (!std::isspace(static_cast<unsigned char>(c))) out += c;
  return out;
}

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> parts;
  std::string cur;
  for (char c : text) {
    if (c == sep) {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  parts.push_back(cur);
  return parts;
}

// Sorted, duplicate-free terms; "causal" is the identity of '&' and absorbs '|' (every
// mask is already intersected with causality).
Expr parse(const std::string& expression) {
  const std::string text = strip_spaces(expression);
  if (text.empty()) fail("mask expression", std::string("is empty; ") + kGrammarHint);
  for (char c : text)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == ':' || c == '.' || c == '|' || c == '&' ||
          c == '-' || c == '+'))
      fail("mask '" + expression + "'", std::string("unexpected character '") + c + "'; " + kGrammarHint);
  Expr expr;
  for (const auto& term_text : split(text, '|')) {
    if (term_text.empty()) fail("mask '" + expression + "'", "empty operand of '|'");
    Term term;
    for (const auto& atom_text : split(term_text, '&')) {
      if (atom_text.empty()) fail("mask '" + expression + "'", "empty operand of '&'");
      term.push_back(parse_atom(atom_text));
    }
    std::sort(term.begin(), term.end());
    term.erase(std::unique(term.begin(), term.end()), term.end());
    if (term.size() > 1 && term.front().kind == Kind::Causal) term.erase(term.begin());
    expr.push_back(term);
  }
  for (const auto& term : expr)
    if (term.size() == 1 && term.front().kind == Kind::Causal) return {term};
  std::sort(expr.begin(), expr.end());
  expr.erase(std::unique(expr.begin(), expr.end()), expr.end());
  return expr;
}

std::string spell(const Expr& expr) {
  std::string out;
  for (std::size_t i = 0; i < expr.size(); ++i) {
    if (i) out += '|';
    for (std::size_t j = 0; j < expr[i].size(); ++j) {
      if (j) out += '&';
      out += expr[i][j].spelling();
    }
  }
  return out;
}

}  // namespace grammar

using grammar::fail;
using grammar::parse;
using grammar::spell;
using grammar::split;
using grammar::strip_spaces;

std::string canonical(const std::string& expression) { return spell(parse(expression)); }

std::vector<std::string> parse_list(const std::string& comma_separated) {
  std::vector<std::string> out;
  for (const auto& entry : split(comma_separated, ',')) {
    if (strip_spaces(entry).empty())
      fail("mask list '" + comma_separated + "'", "empty entry (expected comma-separated mask expressions)");
    out.push_back(canonical(entry));
  }
  return out;
}

std::vector<std::string> parse_list_param(const std::string& key, const std::string& comma_separated) {
  try {
    return parse_list(comma_separated);
  } catch (const std::invalid_argument& e) {
    throw ParamError(key, "parameter '" + key + "' = '" + comma_separated + "': " + e.what());
  }
}


std::string canonical_param(const std::string& key, const std::string& expression) {
  try {
    return canonical(expression);
  } catch (const std::invalid_argument& e) {
    throw ParamError(key, "parameter '" + key + "' = '" + expression + "': " + e.what());
  }
}

}  // namespace attnlab::masks
