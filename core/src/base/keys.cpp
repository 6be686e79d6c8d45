#include "base/keys.hpp"

#include "base/text.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace attnlab::keys {
namespace {

using base::number_text;

std::string interval(const Allowed& a) {
  const bool unbounded = std::isinf(a.min) && std::isinf(a.max);
  if (unbounded) return "";
  return std::string(" in ") + (a.min_open ? "(" : "[") + number_text(a.min) + ", " + number_text(a.max) +
         (std::isinf(a.max) ? ")" : "]");
}

}  // namespace

std::string Key::describe() const {
  std::string out = is_list() ? "array of " : "";
  switch (type) {
    case Type::Int:
    case Type::IntList: return out + "int" + interval(allowed);
    case Type::Float: return out + "number" + interval(allowed);
    case Type::Bool: return out + "bool";
    case Type::String:
    case Type::StringList: {
      if (allowed.choices.empty()) return out + "string";
      out += "one of ";
      for (std::size_t i = 0; i < allowed.choices.size(); ++i) out += (i ? "|" : "") + allowed.choices[i];
      return out;
    }
  }
  return "?";
}

std::string Key::refuse(const nlohmann::json& value) const {
  auto in_range = [&](double x) {
    return (allowed.min_open ? x > allowed.min : x >= allowed.min) && x <= allowed.max;
  };
  switch (type) {
    case Type::Int:
    case Type::IntList:
      if (!value.is_number_integer()) return "expected an integer";
      if (!in_range(value.get<double>())) return value.dump() + " is out of range";
      return "";
    case Type::Float:
      if (!value.is_number()) return "expected a number";
      if (!in_range(value.get<double>())) return value.dump() + " is out of range";
      return "";
    case Type::Bool: return value.is_boolean() ? "" : "expected true or false";
    case Type::String:
    case Type::StringList: {
      if (!value.is_string()) return "expected a string";
      const auto& c = allowed.choices;
      if (!c.empty() && std::find(c.begin(), c.end(), value.get<std::string>()) == c.end())
        return "'" + value.get<std::string>() + "' is not allowed";
      return "";
    }
  }
  return "unsupported";
}

}  // namespace attnlab::keys
