#pragma once
// One declaration per configuration key: its name, type, default, allowed values and a
// one-line doc. A spec struct lists its keys once, in an X-macro (one KEY(...) per line, each
// line but the last ending in a backslash):
//
//   #define ATTNLAB_TEACHER_KEYS(KEY)
//     KEY(std::int64_t, n_layer, 2, keys::range(1, 96), "transformer layers")
//     KEY(double, lr, 3e-3, keys::above(0, 10), "AdamW peak learning rate")
//   struct TeacherSpec { ATTNLAB_TEACHER_KEYS(ATTNLAB_KEY_FIELD) };
//
// and that one list makes the struct's fields with their defaults (ATTNLAB_KEY_FIELD) and its
// key table (ATTNLAB_KEY_TABLE, in a .cpp): what sweep validation checks, what docs/CONFIG.md
// lists, and the code that reads a checked value into its field. Nothing else restates a key.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

namespace attnlab::keys {

using IntList = std::vector<std::int64_t>;
using StringList = std::vector<std::string>;

enum class Type { Int, Float, Bool, String, IntList, StringList };

// What a value may be: numbers within [min, max] (min excluded when min_open), strings one
// of `choices` (any string when empty). Lists: every element.
struct Allowed {
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  bool min_open = false;
  std::vector<std::string> choices;
};
inline Allowed any() { return {}; }
inline Allowed range(double lo, double hi) {
  Allowed a;
  a.min = lo;
  a.max = hi;
  return a;
}
// (lo, hi]: e.g. a learning rate, which must be > 0.
inline Allowed above(double lo, double hi = std::numeric_limits<double>::infinity()) {
  Allowed a = range(lo, hi);
  a.min_open = true;
  return a;
}
inline Allowed one_of(std::vector<std::string> choices) {
  Allowed a;
  a.choices = std::move(choices);
  return a;
}

struct Key {
  std::string name;
  Type type = Type::Int;
  nlohmann::json default_value;
  Allowed allowed;
  std::string doc;

  // "int in [1, 96]", "number in (0, 10]", "one of bytes|gpt2", "array of int in [2, 65536]".
  std::string describe() const;
  // Empty when `value` (one scalar; a list's element) is allowed, else why not, e.g.
  // "expected an integer" or "0 is out of range".
  std::string refuse(const nlohmann::json& value) const;
  bool is_list() const { return type == Type::IntList || type == Type::StringList; }
};

template <typename T>
constexpr Type type_of() {
  if constexpr (std::is_same_v<T, bool>) return Type::Bool;
  else if constexpr (std::is_integral_v<T>) return Type::Int;
  else if constexpr (std::is_floating_point_v<T>) return Type::Float;
  else if constexpr (std::is_same_v<T, std::string>) return Type::String;
  else if constexpr (std::is_same_v<T, IntList>) return Type::IntList;
  else return Type::StringList;
}

// The keys of one spec struct, with the code that moves a value between JSON and the field.
template <typename Spec>
class Table {
 public:
  template <typename T>
  void add(const char* name, T Spec::*field, const T& default_value, Allowed allowed, const char* doc) {
    keys_.push_back({name, type_of<T>(), nlohmann::json(default_value), std::move(allowed), doc});
    set_.push_back([field](Spec& spec, const nlohmann::json& v) { spec.*field = v.get<T>(); });
    get_.push_back([field](const Spec& spec) { return nlohmann::json(spec.*field); });
  }

  const std::vector<Key>& keys() const { return keys_; }
  const Key* find(const std::string& name) const {
    for (const auto& k : keys_)
      if (k.name == name) return &k;
    return nullptr;
  }

  // The defaults with every key present in `values` (already checked) assigned; keys of
  // `values` that are not in this table are left to other tables.
  Spec read(const nlohmann::json& values, Spec spec = Spec()) const {
    for (std::size_t i = 0; i < keys_.size(); ++i)
      if (values.is_object() && values.contains(keys_[i].name)) set_[i](spec, values[keys_[i].name]);
    return spec;
  }

  // Every field of `spec` checked against its declaration; throws std::invalid_argument
  // "[section] key = value: why (allowed: ...)" for the first one refused. For specs built in
  // code rather than read from a sweep file.
  void check(const Spec& spec, const std::string& section) const {
    for (std::size_t i = 0; i < keys_.size(); ++i) {
      const nlohmann::json value = get_[i](spec);
      const auto& key = keys_[i];
      for (const auto& element : key.is_list() ? value : nlohmann::json::array({value}))
        if (const std::string why = key.refuse(element); !why.empty())
          throw std::invalid_argument("[" + section + "] " + key.name + " = " + element.dump() + ": " + why +
                                      " (allowed: " + key.describe() + ")");
    }
  }

 private:
  std::vector<Key> keys_;
  std::vector<std::function<void(Spec&, const nlohmann::json&)>> set_;
  std::vector<std::function<nlohmann::json(const Spec&)>> get_;
};

}  // namespace attnlab::keys

// X-macro expansions (see the top of this file). ATTNLAB_KEY_ROW expects `table` (a
// keys::Table<SpecType>) and the alias `SpecType` in scope.
#define ATTNLAB_KEY_FIELD(type, name, def, allowed, doc) type name = def;
#define ATTNLAB_KEY_ROW(type, name, def, allowed, doc) table.add<type>(#name, &SpecType::name, def, allowed, doc);

// Defines `const keys::Table<Spec>& function()`: Spec's key table, built once from its list
// KEYS (in a .cpp), e.g. ATTNLAB_KEY_TABLE(teacher_keys, TeacherSpec, ATTNLAB_TEACHER_KEYS).
#define ATTNLAB_KEY_TABLE(function, Spec, KEYS)    \
  const ::attnlab::keys::Table<Spec>& function() { \
    static const auto built = [] {                 \
      using SpecType = Spec;                       \
      ::attnlab::keys::Table<SpecType> table;      \
      KEYS(ATTNLAB_KEY_ROW)                        \
      return table;                                \
    }();                                           \
    return built;                                  \
  }
