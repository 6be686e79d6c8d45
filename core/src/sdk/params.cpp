#include <attnlab/params.hpp>

#include "base/text.hpp"

#include <cmath>
#include <sstream>

namespace attnlab {

const char* to_string(ParamType type) {
  switch (type) {
    case ParamType::Bool: return "bool";
    case ParamType::Int: return "int";
    case ParamType::Float: return "float";
    case ParamType::String: return "string";
  }
  return "?";
}

std::string to_string(const ParamValue& value) {
  if (auto b = std::get_if<bool>(&value)) return *b ? "true" : "false";
  if (auto i = std::get_if<std::int64_t>(&value)) return std::to_string(*i);
  if (auto d = std::get_if<double>(&value)) {
    std::ostringstream out;
    out << *d;
    return out.str();
  }
  return std::get<std::string>(value);
}

using base::number_text;

// Unbounded unless a range is given; filled member by member (aggregate initialisation with
// some members left out trips -Wmissing-field-initializers).
static ParamSpec make_spec(std::string name, ParamType type, ParamValue def, std::string help) {
  ParamSpec spec;
  spec.name = std::move(name);
  spec.type = type;
  spec.default_value = std::move(def);
  spec.help = std::move(help);
  return spec;
}

ParamSpec ParamSpec::integer(std::string name, std::int64_t def, double min, double max, std::string help) {
  ParamSpec spec = make_spec(std::move(name), ParamType::Int, def, std::move(help));
  spec.min = min;
  spec.max = max;
  return spec;
}
ParamSpec ParamSpec::real(std::string name, double def, double min, double max, std::string help) {
  ParamSpec spec = make_spec(std::move(name), ParamType::Float, def, std::move(help));
  spec.min = min;
  spec.max = max;
  return spec;
}
ParamSpec ParamSpec::boolean(std::string name, bool def, std::string help) {
  return make_spec(std::move(name), ParamType::Bool, def, std::move(help));
}
ParamSpec ParamSpec::choice(std::string name, std::string def, std::vector<std::string> choices, std::string help) {
  ParamSpec spec = make_spec(std::move(name), ParamType::String, std::move(def), std::move(help));
  spec.choices = std::move(choices);
  return spec;
}
ParamSpec ParamSpec::text(std::string name, std::string def, std::string help) {
  return make_spec(std::move(name), ParamType::String, std::move(def), std::move(help));
}

std::string ParamSpec::allowed() const {
  switch (type) {
    case ParamType::Bool: return "bool";
    case ParamType::Int:
    case ParamType::Float: return std::string(to_string(type)) + " in [" + number_text(min) + ", " + number_text(max) + "]";
    case ParamType::String: {
      if (choices.empty()) return "string";
      std::string out = "one of ";
      for (size_t i = 0; i < choices.size(); ++i) out += (i ? "|" : "") + choices[i];
      return out;
    }
  }
  return "?";
}

ParamError::ParamError(std::string key_, const std::string& message, std::string hint_)
    : std::invalid_argument(message), key(std::move(key_)), hint(std::move(hint_)) {}

namespace param {
ParamSpec execution(std::vector<std::string> choices, std::string help) {
  const std::string def = choices.empty() ? "" : choices.front();
  return ParamSpec::choice("execution", def, std::move(choices), std::move(help));
}
ParamSpec tile() {
  return ParamSpec::integer("tile", 64, 16, 256, "tile size of attnlab's block-sparse kernel (and of block density)");
}
}  // namespace param

const ParamValue& Params::at(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) throw ParamError(name, "parameter '" + name + "' is not set");
  return it->second;
}
bool Params::get_bool(const std::string& name) const { return std::get<bool>(at(name)); }
std::int64_t Params::get_int(const std::string& name) const { return std::get<std::int64_t>(at(name)); }
double Params::get_float(const std::string& name) const {
  const auto& v = at(name);
  if (auto i = std::get_if<std::int64_t>(&v)) return static_cast<double>(*i);
  return std::get<double>(v);
}
const std::string& Params::get_string(const std::string& name) const { return std::get<std::string>(at(name)); }

static ParamValue check(const ParamSpec& spec, const ParamValue& value) {
  auto refuse = [&](const std::string& why) -> ParamError {
    return ParamError(spec.name, "parameter '" + spec.name + "' = " + to_string(value) + ": " + why +
                                     " (allowed: " + spec.allowed() + ")");
  };
  switch (spec.type) {
    case ParamType::Bool:
      if (!std::holds_alternative<bool>(value)) throw refuse("expected a bool");
      return value;
    case ParamType::Int: {
      auto i = std::get_if<std::int64_t>(&value);
      if (!i) throw refuse("expected an integer");
      if (*i < spec.min || *i > spec.max) throw refuse("out of range");
      return value;
    }
    case ParamType::Float: {
      double x;
      if (auto i = std::get_if<std::int64_t>(&value)) x = static_cast<double>(*i);
      else if (auto d = std::get_if<double>(&value)) x = *d;
      else throw refuse("expected a number");
      if (!(x >= spec.min && x <= spec.max)) throw refuse("out of range");
      return x;
    }
    case ParamType::String: {
      auto s = std::get_if<std::string>(&value);
      if (!s) throw refuse("expected a string");
      if (!spec.choices.empty()) {
        bool ok = false;
        for (const auto& c : spec.choices) ok = ok || c == *s;
        if (!ok) throw refuse("not an allowed value");
      }
      return value;
    }
  }
  return value;
}

Params resolve_params(const std::vector<ParamSpec>& schema, const std::map<std::string, ParamValue>& given) {
  std::map<std::string, ParamValue> out;
  for (const auto& [key, value] : given) {
    bool known = false;
    for (const auto& spec : schema) known = known || spec.name == key;
    if (!known) {
      std::string names;
      for (const auto& spec : schema) names += (names.empty() ? "" : ", ") + spec.name;
      throw ParamError(key, "unknown parameter '" + key + "' (known: " + (names.empty() ? "none" : names) + ")");
    }
  }
  for (const auto& spec : schema) {
    auto it = given.find(spec.name);
    out[spec.name] = check(spec, it == given.end() ? spec.default_value : it->second);
  }
  return Params(std::move(out));
}

}  // namespace attnlab
