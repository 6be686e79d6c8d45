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
#include <set>
#include <sstream>

namespace attnlab {

ATTNLAB_KEY_TABLE(sweep_keys, SweepHead, ATTNLAB_SWEEP_KEYS)
ATTNLAB_KEY_TABLE(slurm_keys, SlurmSpec, ATTNLAB_SLURM_KEYS)

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

ParamValue json_to_param(const nlohmann::json& value) {
  if (value.is_boolean()) return value.get<bool>();
  if (value.is_number_integer()) return value.get<std::int64_t>();
  if (value.is_number()) return value.get<double>();
  return value.get<std::string>();
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

namespace {

toml::table parse_toml(const std::string& source, const std::string& path) {
  check_toml_characters(source, path);
  try {
    return toml::parse(source, path);
  } catch (const toml::parse_error& e) {
    std::ostringstream out;
    out << where(e.source(), path) << ": " << e.description();
    throw ConfigError(out.str());
  }
}

// [sweep]: the head, with the defaults of its kind; returns that kind.
const KindSchema& read_head(const toml::table& root, const std::vector<KindSchema>& kinds, SweepSpec& sweep) {
  const auto& path = sweep.path;
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
  return *kind;
}

// [slurm] and the kind's own sections; anything else at the top level is unknown.
void read_sections(const toml::table& root, const KindSchema& kind, SweepSpec& sweep) {
  const auto& path = sweep.path;
  for (const auto& [k, node] : root) {
    const std::string name(k.str());
    if (name == "sweep" || name == "grid" || name == "backend") continue;
    if (name == "slurm") {
      if (!node.is_table()) fail(node, path, "[slurm] must be a table");
      sweep.slurm = slurm_keys().read(check_section(*node.as_table(), "slurm", slurm_keys().keys(), path));
      continue;
    }
    const auto section = std::find_if(kind.sections.begin(), kind.sections.end(),
                                      [&](const auto& s) { return s.first == name; });
    if (section != kind.sections.end()) {
      if (!node.is_table()) fail(node, path, "[" + name + "] must be a table");
      sweep.sections[name] = check_section(*node.as_table(), name, section->second, path);
      continue;
    }
    std::string known = "sweep, grid, backend.<name>, slurm";
    for (const auto& s : kind.sections) known += ", " + s.first;
    fail(node, path, "unknown table or key '" + name + "' for kind = \"" + sweep.kind + "\" (known: " + known + ")");
  }
}

// [grid]: backend, then the kind's keys, in the file's order; returns the backend axis.
const Axis& read_grid(const toml::table& root, const KindSchema& kind, const BackendCatalog& backends,
                      SweepSpec& sweep) {
  const auto& path = sweep.path;
  const auto* grid = root["grid"].as_table();
  if (!grid) fail(*root["sweep"].as_table(), path, "missing [grid] table (at least: backend = [...])");
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
    const keys::Key* key = find_key(kind.grid, name);
    if (!key)
      fail(node, path, "unknown key [grid] " + name + " for kind = \"" + sweep.kind + "\" (known: " +
                           known_keys(kind.grid, "backend") + ")");
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
  return *backend_axis;
}

// [backend.<name>]: parameters checked against the plugin's schema, value by value.
void read_backend_tables(const toml::table& root, const BackendCatalog& backends, const Axis& backend_axis,
                         SweepSpec& sweep) {
  const auto& path = sweep.path;
  const auto* tables = root["backend"].as_table();
  if (!tables) return;
  for (const auto& [k, node] : *tables) {
    const std::string name(k.str());
    const std::string section = "[backend." + name + "]";
    const auto* schema = backends.backend_schema(name);
    if (!schema) fail(node, path, section + ": " + backends.unknown_backend(name));
    if (std::find(backend_axis.values.begin(), backend_axis.values.end(), json(name)) == backend_axis.values.end())
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

}  // namespace

SweepSpec load_sweep_source(const std::string& path, const std::string& source, const BackendCatalog& backends,
                            const std::vector<KindSchema>& kinds, const std::vector<std::string>& overrides) {
  SweepSpec sweep;
  sweep.path = path;
  sweep.source = source;
  sweep.overrides = overrides;
  toml::table root = parse_toml(sweep.source, path);
  for (const auto& o : overrides) apply_override(root, o);
  const KindSchema& kind = read_head(root, kinds, sweep);
  read_sections(root, kind, sweep);
  const Axis& backend_axis = read_grid(root, kind, backends, sweep);
  read_backend_tables(root, backends, backend_axis, sweep);
  return sweep;
}

}  // namespace attnlab
