// Sweep parsing and validation (config.hpp). The keys are their declarations: SweepHead's
// here, the grid and section keys of each trial kind (KindSchema), the backends' schemas and
// validate hooks (BackendCatalog). Nothing runs until every key of the file has been checked.
#include "runtime/config.hpp"

#include "base/hash.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <sstream>

namespace attnlab {

const keys::Table<SweepHead>& sweep_keys() {
  static const auto keys = [] {
    using SpecType = SweepHead;
    keys::Table<SpecType> table;
    ATTNLAB_SWEEP_KEYS(ATTNLAB_KEY_ROW)
    return table;
  }();
  return keys;
}

const keys::Table<SlurmSpec>& slurm_keys() {
  static const auto keys = [] {
    using SpecType = SlurmSpec;
    keys::Table<SpecType> table;
    ATTNLAB_SLURM_KEYS(ATTNLAB_KEY_ROW)
    return table;
  }();
  return keys;
}

namespace {

using json = nlohmann::json;

std::string where(const toml::source_region& source, const std::string& fallback_path) {
  std::ostringstream out;
  out << (source.path ? *source.path : fallback_path) << ":" << source.begin.line << ":" << source.begin.column;
  return out.str();
}

std::string where(const toml::node& node, const std::string& path) { return where(node.source(), path); }

[[noreturn]] void fail(const toml::node& node, const std::string& path, const std::string& message) {
  throw ConfigError(where(node, path) + ": " + message);
}

std::string known_keys(const std::vector<keys::Key>& keys, const std::string& first = "") {
  std::string out = first;
  for (const auto& k : keys) out += (out.empty() ? "" : ", ") + k.name;
  return out;
}

const keys::Key* find_key(const std::vector<keys::Key>& keys, const std::string& name) {
  for (const auto& k : keys)
    if (k.name == name) return &k;
  return nullptr;
}

// One TOML scalar as JSON (anything else is refused).
json scalar_json(const toml::node& node, const std::string& full, const std::string& path) {
  if (node.is_integer()) return *node.value<std::int64_t>();
  if (node.is_floating_point()) return *node.value<double>();
  if (node.is_boolean()) return *node.value<bool>();
  if (node.is_string()) return *node.value<std::string>();
  fail(node, path, full + ": expected a bool, integer, number or string");
}

// One scalar against its declaration; a number for a float key is stored as a double, so the
// trial key does not depend on whether the file wrote 1 or 1.0.
json check_scalar(const toml::node& node, const keys::Key& key, const std::string& full, const std::string& path) {
  if (node.is_array() || node.is_table())
    fail(node, path, full + ": expected a single value (allowed: " + key.describe() + ")");
  json value = scalar_json(node, full, path);
  if (const std::string why = key.refuse(value); !why.empty())
    fail(node, path, full + ": " + why + " (allowed: " + key.describe() + ")");
  if (key.type == keys::Type::Float) value = value.get<double>();
  return value;
}

// A section of plain (non-axis) keys -> JSON object.
json check_section(const toml::table& table, const std::string& section, const std::vector<keys::Key>& keys,
                   const std::string& path) {
  json out = json::object();
  for (const auto& [k, node] : table) {
    const std::string name(k.str());
    const keys::Key* key = find_key(keys, name);
    if (!key) fail(node, path, "unknown key [" + section + "] " + name + " (known: " + known_keys(keys) + ")");
    const std::string full = "[" + section + "] " + name;
    if (key->is_list()) {
      const auto* array = node.as_array();
      if (!array) fail(node, path, full + ": expected an array (allowed: " + key->describe() + ")");
      json list = json::array();
      for (const auto& item : *array) list.push_back(check_scalar(item, *key, full, path));
      out[name] = list;
    } else {
      if (node.is_array())
        fail(node, path, full + ": expected a single value, not an array (arrays are axes only in [grid] and [backend.*])");
      out[name] = check_scalar(node, *key, full, path);
    }
  }
  return out;
}

// An axis table entry ([grid] or [backend.X]): a scalar or an array of scalars.
Axis read_axis(const toml::node& node, const std::string& name, const std::string& full,
               const std::function<json(const toml::node&)>& check_one, const std::string& path) {
  Axis axis;
  axis.name = name;
  axis.line = static_cast<int>(node.source().begin.line);
  auto add = [&](const toml::node& item) {
    json value = check_one(item);
    // A value twice would make the same trial twice (one key, one database row).
    if (std::find(axis.values.begin(), axis.values.end(), value) != axis.values.end())
      fail(item, path, full + ": " + value.dump() + " appears twice in this axis");
    axis.values.push_back(std::move(value));
    axis.where.push_back(where(item, path));
  };
  if (const auto* array = node.as_array()) {
    if (array->empty()) fail(node, path, full + ": an axis needs at least one value");
    for (const auto& item : *array) add(item);
  } else {
    add(node);
  }
  return axis;
}

ParamValue json_to_param(const json& value) {
  if (value.is_boolean()) return value.get<bool>();
  if (value.is_number_integer()) return value.get<std::int64_t>();
  if (value.is_number()) return value.get<double>();
  return value.get<std::string>();
}

// Applies "section.key=value" (a TOML value) on top of the parsed file.
void check_toml_characters(const std::string& text, const std::string& path);

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
  if (dot == std::string::npos || dot == 0 || dot + 1 == dotted.size())
    throw ConfigError("--set " + text + ": expected section.key=value");
  const std::string section = dotted.substr(0, dot), key = dotted.substr(dot + 1);
  toml::table parsed;
  try {
    check_toml_characters("v = " + value, "<--set " + dotted + ">");
    parsed = toml::parse("v = " + value, std::string_view("<--set " + dotted + ">"));
  } catch (const std::exception&) {  // toml::parse_error, or ConfigError from the character check
    // A bare word is taken as a string: --set teacher.checkpoint=/path/to/gpt2
    parsed = toml::table{{"v", value}};
  }
  const toml::node* parsed_value = parsed.get("v");
  if (!parsed_value) throw ConfigError("--set " + text + ": expected section.key=value");
  toml::table* target = &root;
  std::stringstream parts(section);
  std::string part;
  while (std::getline(parts, part, '.')) {
    if (part.empty()) throw ConfigError("--set " + text + ": empty section name");
    if (!target->contains(part)) target->insert(part, toml::table{});
    target = (*target)[part].as_table();
    if (!target) throw ConfigError("--set " + text + ": " + part + " is not a table");
  }
  target->insert_or_assign(key, *parsed_value);
}

// TOML allows non-ASCII text only inside strings and comments. Elsewhere toml++ (3.3 in
// Debian 12, 3.4 in Debian 13) asks whether such a character is whitespace, and for most
// code points reaches TOML_UNREACHABLE (__builtin_unreachable: undefined behaviour;
// marzer/tomlplusplus#295, fixed upstream after 3.4; found here by tests/fuzz). So toml++
// first reads a stand-in of the text where every non-ASCII character is a backtick: a
// character TOML allows only inside strings and comments, and pure ASCII, which toml++
// handles safely. If the stand-in parses, every non-ASCII character of the text sits in a
// string or a comment, and the text itself is safe to parse. If it does not, the text is
// refused with the stand-in's error, and never reaches toml++; an error at a stand-in
// backtick is a non-ASCII character outside a string or comment, and says so.
void check_toml_characters(const std::string& text, const std::string& path) {
  std::string ascii;
  std::set<std::pair<std::uint32_t, std::uint32_t>> stand_ins;  // (line, column) of each backtick put in
  std::uint32_t line = 1, column = 1;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      ascii += text[i];
      if (c == '\n') ++line, column = 1;
      else ++column;
      continue;
    }
    // One character: a lead byte and its continuation bytes (a stray one stands alone).
    while (i + 1 < text.size() && (static_cast<unsigned char>(text[i + 1]) & 0xC0) == 0x80 && (c & 0xC0) == 0xC0) ++i;
    ascii += '`';
    stand_ins.insert({line, column});
    ++column;
  }
  if (stand_ins.empty()) return;
  try {
    (void)toml::parse(ascii, path);
  } catch (const toml::parse_error& e) {
    const auto& at = e.source().begin;
    const std::string place = path + ":" + std::to_string(at.line) + ":" + std::to_string(at.column);
    if (stand_ins.count({at.line, at.column}))
      throw ConfigError(place + ": a non-ASCII character outside a string or comment (TOML keys and values are "
                                "ASCII unless quoted)");
    throw ConfigError(place + ": " + std::string(e.description()));
  }
}

// [sweep] keys that only some kinds can honour: refused where the kind cannot, at the key.
void check_execution_keys(const SweepHead& head, const KindSchema& kind, const toml::table& table,
                          const std::string& path) {
  auto at = [&](const char* key) -> const toml::node& {
    const toml::node* node = table.get(key);
    return node ? *node : static_cast<const toml::node&>(table);
  };
  if (head.rounds > 1 && !kind.times_repeats)
    fail(at("rounds"), path, "[sweep] rounds: only bench sweeps time repeats to pool (kind = \"" + kind.name + "\")");
  if (head.prune == "none") return;
  if (kind.curves.empty())
    fail(at("prune"), path, "[sweep] prune: kind = \"" + kind.name + "\" logs no per-step metric to prune on");
  if (std::find(kind.curves.begin(), kind.curves.end(), head.prune_metric) == kind.curves.end()) {
    std::string known;
    for (const auto& c : kind.curves) known += (known.empty() ? "" : ", ") + c;
    fail(at("prune_metric"), path,
         "[sweep] prune_metric: '" + head.prune_metric + "' is not a per-step metric of kind = \"" + kind.name +
             "\" (it logs: " + known + ")");
  }
}

std::string kind_names(const std::vector<KindSchema>& kinds) {
  std::string out;
  for (const auto& k : kinds) out += (out.empty() ? "" : "|") + k.name;
  return out;
}

}  // namespace

json to_json(const ParamValue& value) {
  return std::visit([](const auto& v) { return json(v); }, value);
}

// FNV-1a 64's prime with an offset basis a digit short of FNV's (1469598103934665603, not
// 14695981039346656037): how the first trial keys were made. Kept, so that every database
// written since still resumes; any fixed 64-bit hash would do.
constexpr std::uint64_t kTrialKeyBasis = 1469598103934665603ull;

std::string stable_hash(const std::string& text) { return base::hex64(base::fnv1a64(text, kTrialKeyBasis)); }

SweepSpec load_sweep(const std::string& path, const BackendCatalog& backends, const std::vector<KindSchema>& kinds,
                     const std::vector<std::string>& overrides) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw ConfigError(path + ": cannot open sweep file");
  std::stringstream buffer;
  buffer << file.rdbuf();
  return load_sweep_source(path, buffer.str(), backends, kinds, overrides);
}

SweepSpec load_sweep_source(const std::string& path, const std::string& source, const BackendCatalog& backends,
                            const std::vector<KindSchema>& kinds, const std::vector<std::string>& overrides) {
  SweepSpec sweep;
  sweep.path = path;
  sweep.source = source;
  sweep.overrides = overrides;
  check_toml_characters(sweep.source, path);
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
  const json head = check_section(*sweep_table, "sweep", sweep_keys().keys(), path);
  if (!head.contains("name") || head["name"].get<std::string>().empty())
    fail(*sweep_table, path, "[sweep] name is required (a non-empty string)");
  if (!head.contains("kind")) fail(*sweep_table, path, "[sweep] kind is required (allowed: " + kind_names(kinds) + ")");
  const std::string kind_name = head["kind"];
  const auto kind = std::find_if(kinds.begin(), kinds.end(), [&](const KindSchema& k) { return k.name == kind_name; });
  if (kind == kinds.end())
    fail(*sweep_table->get("kind"), path,
         "[sweep] kind: '" + kind_name + "' is not a trial kind (allowed: " + kind_names(kinds) + ")");
  json resolved_head = kind->sweep_defaults;
  for (const auto& [k, v] : head.items()) resolved_head[k] = v;
  static_cast<SweepHead&>(sweep) = sweep_keys().read(resolved_head);
  check_execution_keys(sweep, *kind, *sweep_table, path);
  for (const auto& [k, node] : *sweep_table) sweep.head_where[std::string(k.str())] = where(node, path);

  // The kind's own sections; anything else at the top level is unknown.
  for (const auto& [k, node] : root) {
    const std::string name(k.str());
    if (name == "sweep" || name == "grid" || name == "backend") continue;
    if (name == "slurm") {
      if (!node.is_table()) fail(node, path, "[slurm] must be a table");
      sweep.slurm = slurm_keys().read(check_section(*node.as_table(), "slurm", slurm_keys().keys(), path));
      continue;
    }
    const auto section = std::find_if(kind->sections.begin(), kind->sections.end(),
                                      [&](const auto& s) { return s.first == name; });
    if (section != kind->sections.end()) {
      if (!node.is_table()) fail(node, path, "[" + name + "] must be a table");
      sweep.sections[name] = check_section(*node.as_table(), name, section->second, path);
      continue;
    }
    std::string known = "sweep, grid, backend.<name>, slurm";
    for (const auto& s : kind->sections) known += ", " + s.first;
    fail(node, path, "unknown table or key '" + name + "' for kind = \"" + sweep.kind + "\" (known: " + known + ")");
  }

  // [grid]: backend, then the kind's keys.
  const auto* grid = root["grid"].as_table();
  if (!grid) fail(*sweep_table, path, "missing [grid] table (at least: backend = [...])");
  for (const auto& [k, node] : *grid) {
    const std::string name(k.str());
    const std::string full = "[grid] " + name;
    if (name == "backend") {
      sweep.grid.push_back(read_axis(node, name, full, [&](const toml::node& item) {
        if (!item.is_string()) fail(item, path, full + ": expected a backend name (a string)");
        const std::string backend = *item.value<std::string>();
        if (!backends.backend_schema(backend)) fail(item, path, full + ": " + backends.unknown_backend(backend));
        if (!sweep.backend_where.count(backend)) sweep.backend_where[backend] = where(item, path);
        return json(backend);
      }, path));
      continue;
    }
    const keys::Key* key = find_key(kind->grid, name);
    if (!key)
      fail(node, path, "unknown key [grid] " + name + " for kind = \"" + sweep.kind + "\" (known: " +
                           known_keys(kind->grid, "backend") + ")");
    sweep.grid.push_back(read_axis(node, name, full, [&](const toml::node& item) {
      return check_scalar(item, *key, full, path);
    }, path));
  }
  std::stable_sort(sweep.grid.begin(), sweep.grid.end(), [](const Axis& a, const Axis& b) { return a.line < b.line; });
  const auto backend_axis =
      std::find_if(sweep.grid.begin(), sweep.grid.end(), [](const Axis& a) { return a.name == "backend"; });
  if (backend_axis == sweep.grid.end()) {
    std::string names;
    for (const auto& n : backends.backend_names()) names += (names.empty() ? "" : ", ") + n;
    fail(*grid, path, "[grid] backend is required (available: " + names + ")");
  }

  // [backend.<name>]: parameters checked against the plugin's schema, value by value.
  if (const auto* tables = root["backend"].as_table()) {
    for (const auto& [k, node] : *tables) {
      const std::string name(k.str());
      const std::string section = "[backend." + name + "]";
      const auto* schema = backends.backend_schema(name);
      if (!schema) fail(node, path, section + ": " + backends.unknown_backend(name));
      if (std::find(backend_axis->values.begin(), backend_axis->values.end(), json(name)) == backend_axis->values.end())
        fail(node, path, section + ": backend '" + name + "' is not in [grid] backend");
      const auto* table = node.as_table();
      if (!table) fail(node, path, section + " must be a table");
      sweep.backend_where[name] = where(node, path);
      auto& axes = sweep.backend_axes[name];
      for (const auto& [pk, pnode] : *table) {
        const std::string key(pk.str());
        const std::string full = section + " " + key;
        axes.push_back(read_axis(pnode, key, full, [&](const toml::node& item) {
          json v = scalar_json(item, full, path);
          try {
            resolve_params(*schema, {{key, json_to_param(v)}});
          } catch (const ParamError& e) {
            fail(item, path, full + ": " + e.what());
          }
          return v;
        }, path));
      }
      std::stable_sort(axes.begin(), axes.end(), [](const Axis& a, const Axis& b) { return a.line < b.line; });
    }
  }
  return sweep;
}

// [sweep] sample = N: N trials of the grid drawn uniformly without replacement, seeded by
// [sweep] seed, kept in grid order. Their keys are the grid's, so a rerun resumes them.
static std::vector<TrialSpec> sampled(const SweepSpec& sweep, std::vector<TrialSpec> trials) {
  if (sweep.sample <= 0) return trials;
  const auto n = static_cast<std::size_t>(sweep.sample);
  if (n > trials.size()) {
    const auto it = sweep.head_where.find("sample");
    throw ConfigError((it != sweep.head_where.end() ? it->second : sweep.path + ":1:1") + ": [sweep] sample = " +
                      std::to_string(n) + " is more than the grid's " + std::to_string(trials.size()) + " trials");
  }
  auto order = seeded_permutation(trials.size(), sweep.seed ^ 0x73616d706c65ull);  // "sample"
  order.resize(n);
  std::sort(order.begin(), order.end());
  std::vector<TrialSpec> chosen;
  for (auto i : order) chosen.push_back(std::move(trials[i]));
  return chosen;
}

std::vector<TrialSpec> expand_trials(const SweepSpec& sweep, const BackendCatalog& backends, double max_trials) {
  // The product's size first: a typo of an axis (a range written out by a script gone wrong)
  // must not exhaust memory before it is reported.
  double count = 0;
  {
    double grid = 1;
    const Axis* backend_axis = nullptr;
    for (const auto& a : sweep.grid) {
      if (a.name == "backend") backend_axis = &a;
      else grid *= static_cast<double>(a.values.size());
    }
    for (const auto& b : backend_axis ? backend_axis->values : std::vector<json>{}) {
      double per_backend = grid;
      if (auto it = sweep.backend_axes.find(b.get<std::string>()); it != sweep.backend_axes.end())
        for (const auto& a : it->second) per_backend *= static_cast<double>(a.values.size());
      count += per_backend;
    }
  }
  if (count > max_trials)
    throw ConfigError(sweep.path + ":1:1: the sweep expands into " + std::to_string(static_cast<long long>(count)) +
                      " trials, more than the " + std::to_string(static_cast<long long>(max_trials)) + " allowed");
  std::vector<TrialSpec> trials;
  // Odometer over the grid axes, then over the chosen backend's own axes.
  std::function<void(size_t, json&)> over_grid;
  auto emit = [&](const json& grid_point) {
    const std::string backend = grid_point["backend"];
    std::vector<Axis> axes;
    if (auto it = sweep.backend_axes.find(backend); it != sweep.backend_axes.end()) axes = it->second;
    std::vector<std::size_t> chosen(axes.size());  // which value of each axis this trial has
    std::function<void(size_t, std::map<std::string, ParamValue>&, std::string&)> over_params =
        [&](size_t i, std::map<std::string, ParamValue>& given, std::string& label) {
          if (i == axes.size()) {
            TrialSpec trial;
            trial.backend = backend;
            try {
              trial.backend_params = backends.check_params(backend, given).values();
            } catch (const ParamError& e) {
              // At the value that made this trial fail, or where the backend is named.
              std::string at = sweep.backend_where.count(backend) ? sweep.backend_where.at(backend) : sweep.path;
              for (std::size_t a = 0; a < axes.size(); ++a)
                if (axes[a].name == e.key) at = axes[a].where[chosen[a]];
              throw ConfigError(at + ": [backend." + backend + "] " + e.what() +
                                (e.hint.empty() ? "" : " (hint: " + e.hint + ")"));
            }
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
          for (std::size_t j = 0; j < axes[i].values.size(); ++j) {
            const auto& v = axes[i].values[j];
            chosen[i] = j;
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
  return sampled(sweep, std::move(trials));
}

std::vector<std::size_t> seeded_permutation(std::size_t n, std::uint64_t seed) {
  std::vector<std::size_t> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = i;
  std::mt19937_64 rng(seed);
  for (std::size_t i = n; i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
  return order;
}

}  // namespace attnlab
