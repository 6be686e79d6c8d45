// Sweep parsing and validation. The rules below are the whole sweep schema: one row per key,
// with its type and allowed range, per section and kind. Nothing runs until every key of the
// file has been checked against them.
#include "runtime/config.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>

namespace attnlab {
namespace {

using json = nlohmann::json;

enum class Kind { Int, Float, String, Bool, IntList, StringList };

struct Rule {
  const char* key;
  Kind kind;
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  std::vector<std::string> choices = {};
  bool axis = false;  // may be an array (a grid axis)
};

const double kBig = 1e12;

const std::vector<Rule>& sweep_rules() {
  static const std::vector<Rule> rules = {
      {"name", Kind::String},
      {"kind", Kind::String, 0, 0, {"bench", "distill"}},
      {"description", Kind::String},
      {"seed", Kind::Int, 0, kBig},
      {"warmup", Kind::Int, 0, 1000},
      {"repeats", Kind::Int, 1, 100000},
      {"min_time_s", Kind::Float, 0, 3600},
      {"threads", Kind::Int, 0, 1024},
      {"device", Kind::String, 0, 0, {"cpu", "cuda"}},
  };
  return rules;
}

const std::vector<Rule>& grid_rules(const std::string& kind) {
  static const std::vector<Rule> bench = {
      {"backend", Kind::String, 0, 0, {}, true},
      {"seq_len", Kind::Int, 1, 1 << 20, {}, true},
      {"batch", Kind::Int, 1, 4096, {}, true},
      {"heads", Kind::Int, 1, 1024, {}, true},
      {"head_dim", Kind::Int, 1, 1024, {}, true},
      {"pass", Kind::String, 0, 0, {"fwd", "fwd+bwd"}, true},
      {"dtype", Kind::String, 0, 0, {"float32", "float64"}, true},
  };
  static const std::vector<Rule> distill = {
      {"backend", Kind::String, 0, 0, {}, true},
      {"seq_len", Kind::Int, 2, 1 << 16, {}, true},
      {"batch", Kind::Int, 1, 4096, {}, true},
      {"steps", Kind::Int, 0, 1000000, {}, true},
      {"log_every", Kind::Int, 1, 1000000, {}, true},
      {"lr", Kind::Float, 0, 10, {}, true},
      {"weight_decay", Kind::Float, 0, 10, {}, true},
      {"warmup_frac", Kind::Float, 0, 1, {}, true},
      {"grad_clip", Kind::Float, 0, kBig, {}, true},
      {"alpha_ce", Kind::Float, 0, 1000, {}, true},
      {"alpha_kl", Kind::Float, 0, 1000, {}, true},
      {"temperature", Kind::Float, 1e-3, 1000, {}, true},
      {"lambda", Kind::Float, 0, 1000, {}, true},
      {"train", Kind::String, 0, 0, {"backend", "all"}, true},
  };
  return kind == "distill" ? distill : bench;
}

const std::map<std::string, std::vector<Rule>>& distill_section_rules() {
  static const std::map<std::string, std::vector<Rule>> rules = {
      {"data", {{"corpus", Kind::String}, {"tokenizer", Kind::String, 0, 0, {"bytes", "gpt2"}}}},
      {"teacher",
       {{"checkpoint", Kind::String},
        {"n_layer", Kind::Int, 1, 96},
        {"n_head", Kind::Int, 1, 128},
        {"n_embd", Kind::Int, 8, 16384},
        {"block_size", Kind::Int, 8, 1 << 16},
        {"steps", Kind::Int, 0, 1000000},
        {"batch", Kind::Int, 1, 4096},
        {"seq_len", Kind::Int, 2, 1 << 16},
        {"lr", Kind::Float, 0, 10},
        {"seed", Kind::Int, 0, kBig}}},
      {"eval",
       {{"seq_lens", Kind::IntList, 2, 1 << 16},
        {"batches", Kind::Int, 1, 100000},
        {"prompts", Kind::StringList},
        {"sample_tokens", Kind::Int, 0, 100000},
        {"sample_temperature", Kind::Float, 1e-3, 100}}},
  };
  return rules;
}

std::string where(const toml::source_region& source, const std::string& fallback_path) {
  std::ostringstream out;
  out << (source.path ? *source.path : fallback_path) << ":" << source.begin.line << ":" << source.begin.column;
  return out.str();
}

[[noreturn]] void fail(const toml::node& node, const std::string& path, const std::string& message) {
  throw ConfigError(where(node.source(), path) + ": " + message);
}

std::string describe(const Rule& rule) {
  auto num = [](double x) {
    std::ostringstream out;
    if (std::abs(x) < 1e15 && x == std::floor(x)) out << static_cast<long long>(x);
    else out << x;
    return out.str();
  };
  switch (rule.kind) {
    case Kind::Int:
    case Kind::IntList:
      return std::string(rule.kind == Kind::IntList ? "array of int" : "int") + " in [" + num(rule.min) + ", " +
             num(rule.max) + "]";
    case Kind::Float: return "number in [" + num(rule.min) + ", " + num(rule.max) + "]";
    case Kind::Bool: return "bool";
    case Kind::String:
    case Kind::StringList: {
      std::string out = rule.kind == Kind::StringList ? "array of string" : "string";
      if (!rule.choices.empty()) {
        out = "one of ";
        for (size_t i = 0; i < rule.choices.size(); ++i) out += (i ? "|" : "") + rule.choices[i];
      }
      return out;
    }
  }
  return "?";
}

// One scalar against a rule; returns it as JSON.
json check_scalar(const toml::node& node, const Rule& rule, const std::string& full_key, const std::string& path) {
  auto refuse = [&](const std::string& why) {
    fail(node, path, full_key + ": " + why + " (allowed: " + describe(rule) + ")");
  };
  const bool want_int = rule.kind == Kind::Int || rule.kind == Kind::IntList;
  const bool want_string = rule.kind == Kind::String || rule.kind == Kind::StringList;
  if (want_int) {
    auto v = node.value<std::int64_t>();
    if (!node.is_integer() || !v) refuse("expected an integer");
    if (*v < rule.min || *v > rule.max) refuse(std::to_string(*v) + " is out of range");
    return *v;
  }
  if (rule.kind == Kind::Float) {
    if (!node.is_number()) refuse("expected a number");
    double v = *node.value<double>();
    if (!(v >= rule.min && v <= rule.max)) refuse(std::to_string(v) + " is out of range");
    return v;
  }
  if (rule.kind == Kind::Bool) {
    if (!node.is_boolean()) refuse("expected true or false");
    return *node.value<bool>();
  }
  if (want_string) {
    if (!node.is_string()) refuse("expected a string");
    std::string v = *node.value<std::string>();
    if (!rule.choices.empty() && std::find(rule.choices.begin(), rule.choices.end(), v) == rule.choices.end())
      refuse("'" + v + "' is not allowed");
    return v;
  }
  refuse("unsupported");
  return {};
}

const Rule* find_rule(const std::vector<Rule>& rules, const std::string& key) {
  for (const auto& r : rules)
    if (key == r.key) return &r;
  return nullptr;
}

std::string known_keys(const std::vector<Rule>& rules) {
  std::string out;
  for (const auto& r : rules) out += (out.empty() ? "" : ", ") + std::string(r.key);
  return out;
}

// A section of plain (non-axis) keys -> JSON object.
json check_section(const toml::table& table, const std::string& section, const std::vector<Rule>& rules,
                   const std::string& path) {
  json out = json::object();
  for (const auto& [k, node] : table) {
    const std::string key(k.str());
    const Rule* rule = find_rule(rules, key);
    if (!rule) fail(node, path, "unknown key [" + section + "] " + key + " (known: " + known_keys(rules) + ")");
    const std::string full = "[" + section + "] " + key;
    if (rule->kind == Kind::IntList || rule->kind == Kind::StringList) {
      const auto* array = node.as_array();
      if (!array) fail(node, path, full + ": expected an array (allowed: " + describe(*rule) + ")");
      json list = json::array();
      for (const auto& item : *array) list.push_back(check_scalar(item, *rule, full, path));
      out[key] = list;
    } else {
      if (node.is_array()) fail(node, path, full + ": expected a single value, not an array (arrays are axes only in [grid] and [backend.*])");
      out[key] = check_scalar(node, *rule, full, path);
    }
  }
  return out;
}

// An axis table ([grid] or [backend.X]): each key a scalar or an array of scalars.
Axis read_axis(const toml::node& node, const std::string& key, const std::string& full,
               const std::function<json(const toml::node&)>& check_one, const std::string& path) {
  Axis axis;
  axis.name = key;
  axis.line = static_cast<int>(node.source().begin.line);
  if (const auto* array = node.as_array()) {
    if (array->empty()) fail(node, path, full + ": an axis needs at least one value");
    for (const auto& item : *array) axis.values.push_back(check_one(item));
  } else {
    axis.values.push_back(check_one(node));
  }
  return axis;
}

json node_to_param_json(const toml::node& node, const std::string& full, const std::string& path) {
  if (node.is_integer()) return *node.value<std::int64_t>();
  if (node.is_floating_point()) return *node.value<double>();
  if (node.is_boolean()) return *node.value<bool>();
  if (node.is_string()) return *node.value<std::string>();
  fail(node, path, full + ": expected a bool, integer, number or string");
}

ParamValue json_to_param(const json& value) {
  if (value.is_boolean()) return value.get<bool>();
  if (value.is_number_integer()) return value.get<std::int64_t>();
  if (value.is_number()) return value.get<double>();
  return value.get<std::string>();
}

// Applies "section.key=value" (a TOML value) on top of the parsed file.
void apply_override(toml::table& root, const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos) throw ConfigError("--set " + text + ": expected section.key=value");
  std::string dotted = text.substr(0, eq), value = text.substr(eq + 1);
  auto trim = [](std::string s) {
    s.erase(0, s.find_first_not_of(" \t"));
    s.erase(s.find_last_not_of(" \t") + 1);
    return s;
  };
  dotted = trim(dotted);
  value = trim(value);
  const auto dot = dotted.rfind('.');
  if (dot == std::string::npos) throw ConfigError("--set " + text + ": expected section.key=value");
  const std::string section = dotted.substr(0, dot), key = dotted.substr(dot + 1);
  toml::table parsed;
  try {
    parsed = toml::parse("v = " + value, std::string_view("<--set " + dotted + ">"));
  } catch (const toml::parse_error&) {
    // A bare word is taken as a string: --set teacher.checkpoint=/path/to/gpt2
    parsed = toml::table{{"v", value}};
  }
  toml::table* target = &root;
  std::stringstream parts(section);
  std::string part;
  while (std::getline(parts, part, '.')) {
    if (!target->contains(part)) target->insert(part, toml::table{});
    target = (*target)[part].as_table();
    if (!target) throw ConfigError("--set " + text + ": " + part + " is not a table");
  }
  target->insert_or_assign(key, *parsed.get("v"));
}

}  // namespace

json to_json(const ParamValue& value) {
  return std::visit([](const auto& v) { return json(v); }, value);
}
ParamValue to_param(const json& value) { return json_to_param(value); }

std::string stable_hash(const std::string& text) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buffer[17];
  std::snprintf(buffer, sizeof buffer, "%016llx", static_cast<unsigned long long>(h));
  return buffer;
}

SweepSpec load_sweep(const std::string& path, const PluginRegistry& registry, const std::vector<std::string>& overrides) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw ConfigError(path + ": cannot open sweep file");
  std::stringstream buffer;
  buffer << file.rdbuf();

  SweepSpec sweep;
  sweep.path = path;
  sweep.source = buffer.str();
  toml::table root;
  try {
    root = toml::parse(sweep.source, path);
  } catch (const toml::parse_error& e) {
    std::ostringstream out;
    out << where(e.source(), path) << ": " << e.description();
    throw ConfigError(out.str());
  }
  for (const auto& o : overrides) apply_override(root, o);

  // [sweep]
  const auto* sweep_table = root["sweep"].as_table();
  if (!sweep_table) throw ConfigError(path + ":1:1: missing [sweep] table (name, kind, ...)");
  json head = check_section(*sweep_table, "sweep", sweep_rules(), path);
  if (!head.contains("name")) fail(*sweep_table, path, "[sweep] name is required");
  if (!head.contains("kind")) fail(*sweep_table, path, "[sweep] kind is required (allowed: bench|distill)");
  sweep.name = head["name"];
  sweep.kind = head["kind"];
  sweep.description = head.value("description", "");
  sweep.seed = head.value("seed", 0ull);
  sweep.warmup = head.value("warmup", sweep.kind == "bench" ? 2 : 0);
  sweep.repeats = head.value("repeats", sweep.kind == "bench" ? 5 : 1);
  sweep.min_time_s = head.value("min_time_s", 0.0);
  sweep.threads = head.value("threads", 0);
  sweep.device = head.value("device", "cpu");
  if (sweep.name.empty()) fail(*sweep_table, path, "[sweep] name must not be empty");

  const auto& section_rules = distill_section_rules();
  for (const auto& [k, node] : root) {
    const std::string key(k.str());
    if (key == "sweep" || key == "grid" || key == "backend") continue;
    if (sweep.kind == "distill" && section_rules.count(key)) {
      if (!node.is_table()) fail(node, path, "[" + key + "] must be a table");
      sweep.sections[key] = check_section(*node.as_table(), key, section_rules.at(key), path);
      continue;
    }
    std::string known = "sweep, grid, backend.<name>";
    if (sweep.kind == "distill") known += ", data, teacher, eval";
    fail(node, path, "unknown table or key '" + key + "' for kind = \"" + sweep.kind + "\" (known: " + known + ")");
  }

  // [grid]
  const auto* grid = root["grid"].as_table();
  if (!grid) fail(*sweep_table, path, "missing [grid] table (at least: backend = [...])");
  const auto& rules = grid_rules(sweep.kind);
  for (const auto& [k, node] : *grid) {
    const std::string key(k.str());
    const Rule* rule = find_rule(rules, key);
    if (!rule) fail(node, path, "unknown key [grid] " + key + " for kind = \"" + sweep.kind + "\" (known: " + known_keys(rules) + ")");
    const std::string full = "[grid] " + key;
    Axis axis = read_axis(node, key, full, [&](const toml::node& item) {
      json v = check_scalar(item, *rule, full, path);
      if (key == "backend") {
        try {
          registry.get(v.get<std::string>());
        } catch (const PluginError& e) {
          fail(item, path, full + ": " + e.what());
        }
      }
      return v;
    }, path);
    sweep.grid.push_back(std::move(axis));
  }
  std::sort(sweep.grid.begin(), sweep.grid.end(), [](const Axis& a, const Axis& b) { return a.line < b.line; });
  const auto backend_axis = std::find_if(sweep.grid.begin(), sweep.grid.end(), [](const Axis& a) { return a.name == "backend"; });
  if (backend_axis == sweep.grid.end()) fail(*grid, path, "[grid] backend is required (available: " + [&] {
    std::string s; for (const auto& n : registry.names()) s += (s.empty() ? "" : ", ") + n; return s; }() + ")");

  // [backend.<name>]: parameters checked against the plugin's schema, value by value.
  if (const auto* backends = root["backend"].as_table()) {
    for (const auto& [k, node] : *backends) {
      const std::string name(k.str());
      try {
        registry.get(name);
      } catch (const PluginError& e) {
        fail(node, path, "[backend." + name + "]: " + e.what());
      }
      bool in_grid = false;
      for (const auto& v : backend_axis->values) in_grid = in_grid || v == name;
      if (!in_grid) fail(node, path, "[backend." + name + "]: backend '" + name + "' is not in [grid] backend");
      const auto* table = node.as_table();
      if (!table) fail(node, path, "[backend." + name + "] must be a table");
      const auto& schema = registry.get(name).schema;
      auto& axes = sweep.backend_axes[name];
      for (const auto& [pk, pnode] : *table) {
        const std::string key(pk.str());
        const std::string full = "[backend." + name + "] " + key;
        axes.push_back(read_axis(pnode, key, full, [&](const toml::node& item) {
          json v = node_to_param_json(item, full, path);
          try {
            resolve_params(schema, {{key, json_to_param(v)}});
          } catch (const ParamError& e) {
            fail(item, path, full + ": " + e.what());
          }
          return v;
        }, path));
      }
      std::sort(axes.begin(), axes.end(), [](const Axis& a, const Axis& b) { return a.line < b.line; });
    }
  }
  return sweep;
}

std::vector<TrialSpec> expand_trials(const SweepSpec& sweep, const PluginRegistry& registry) {
  std::vector<TrialSpec> trials;
  // Odometer over the grid axes, then over the chosen backend's own axes.
  std::function<void(size_t, json&)> over_grid;
  auto emit = [&](const json& grid_point) {
    const std::string backend = grid_point["backend"];
    std::vector<Axis> axes;
    if (auto it = sweep.backend_axes.find(backend); it != sweep.backend_axes.end()) axes = it->second;
    std::function<void(size_t, std::map<std::string, ParamValue>&, std::string&)> over_params =
        [&](size_t i, std::map<std::string, ParamValue>& given, std::string& label) {
          if (i == axes.size()) {
            TrialSpec trial;
            trial.backend = backend;
            trial.backend_params = resolve_params(registry.get(backend).schema, given).values();
            json params = json::object();
            for (const auto& [k, v] : trial.backend_params) params[k] = to_json(v);
            trial.config = {{"sweep", sweep.name}, {"kind", sweep.kind}, {"seed", sweep.seed},
                            {"warmup", sweep.warmup}, {"repeats", sweep.repeats}, {"device", sweep.device},
                            {"grid", grid_point}, {"backend_params", params}};
            // Only when set, so the keys of sweeps without it (and their databases) stay valid.
            if (sweep.min_time_s > 0) trial.config["min_time_s"] = sweep.min_time_s;
            for (const auto& [section, body] : sweep.sections.items()) trial.config[section] = body;
            trial.key = stable_hash(trial.config.dump());
            std::string name = backend;
            for (const auto& axis : sweep.grid)
              if (axis.name != "backend" && axis.values.size() > 1) {
                const auto& v = grid_point[axis.name];
                name += "/" + axis.name + ":" + (v.is_string() ? v.get<std::string>() : v.dump());
              }
            trial.name = name + label;
            trials.push_back(std::move(trial));
            return;
          }
          for (const auto& v : axes[i].values) {
            given[axes[i].name] = json_to_param(v);
            std::string next = label;
            if (axes[i].values.size() > 1)
              next += "/" + axes[i].name + ":" + (v.is_string() ? v.get<std::string>() : v.dump());
            over_params(i + 1, given, next);
          }
          given.erase(axes[i].name);
        };
    std::map<std::string, ParamValue> given;
    std::string label;
    over_params(0, given, label);
  };
  over_grid = [&](size_t i, json& point) {
    if (i == sweep.grid.size()) return emit(point);
    for (const auto& v : sweep.grid[i].values) {
      point[sweep.grid[i].name] = v;
      over_grid(i + 1, point);
    }
  };
  json point = json::object();
  over_grid(0, point);
  return trials;
}

}  // namespace attnlab
