#pragma once
// Backend parameters: a schema each plugin declares (name, type, default, allowed range),
// and the resolved values a backend is built with. The runner resolves a trial's values
// against the schema before anything runs, so a backend can trust what it reads.
#include <attnlab/export.hpp>

#include <cstdint>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace attnlab {

using ParamValue = std::variant<bool, std::int64_t, double, std::string>;

enum class ParamType { Bool, Int, Float, String };

ATTNLAB_API const char* to_string(ParamType type);
ATTNLAB_API std::string to_string(const ParamValue& value);

// One parameter of a backend. Int and Float are checked against [min, max] (inclusive);
// String against `choices` when that list is not empty.
struct ATTNLAB_API ParamSpec {
  std::string name;
  ParamType type = ParamType::Float;
  ParamValue default_value = 0.0;
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  std::vector<std::string> choices;
  std::string help;

  static ParamSpec integer(std::string name, std::int64_t def, double min, double max, std::string help);
  static ParamSpec real(std::string name, double def, double min, double max, std::string help);
  static ParamSpec boolean(std::string name, bool def, std::string help);
  static ParamSpec choice(std::string name, std::string def, std::vector<std::string> choices, std::string help);
  static ParamSpec text(std::string name, std::string def, std::string help);

  // "int in [1, 65536]", "float in [0, 1]", "one of sigmoid|softplus", "bool", "string".
  std::string allowed() const;
};

// Thrown for a value the schema (or a plugin's validate hook) refuses; `key` is the
// parameter's name, `hint` an optional suggestion shown with the message.
struct ATTNLAB_API ParamError : std::invalid_argument {
  ParamError(std::string key, const std::string& message, std::string hint = "");
  std::string key;
  std::string hint;
};

// Resolved parameter values: every schema entry is present (given or default) and valid.
class ATTNLAB_API Params {
 public:
  Params() = default;
  explicit Params(std::map<std::string, ParamValue> values) : values_(std::move(values)) {}

  bool has(const std::string& name) const { return values_.count(name) != 0; }
  bool get_bool(const std::string& name) const;
  std::int64_t get_int(const std::string& name) const;
  double get_float(const std::string& name) const;  // an Int value reads as float too
  const std::string& get_string(const std::string& name) const;
  const std::map<std::string, ParamValue>& values() const { return values_; }

 private:
  const ParamValue& at(const std::string& name) const;
  std::map<std::string, ParamValue> values_;
};

// Parameters many backends share, so they read the same everywhere:
namespace param {
// "execution": how the backend computes; `choices` lists its options, the first is the default.
ATTNLAB_API ParamSpec execution(std::vector<std::string> choices, std::string help);
// "tile": tile size of attnlab's block-sparse kernel, 64 by default, in [16, 256].
ATTNLAB_API ParamSpec tile();
}  // namespace param

// Fills defaults and checks types and ranges. An int given for a Float widens; anything else
// of the wrong type, out of range, or unknown to the schema throws ParamError naming the key
// and what is allowed.
ATTNLAB_API Params resolve_params(const std::vector<ParamSpec>& schema,
                                  const std::map<std::string, ParamValue>& given);

}  // namespace attnlab
