#pragma once
// Sweep files: parse (toml++), validate everything before anything runs, expand the grid.
//
//   [sweep]   name, kind ("bench" | "distill"), seed, warmup, repeats, min_time_s, threads, device
//   [grid]    every array is an axis; trials are the cartesian product (file order, first
//             axis outermost); scalars are fixed values
//   [backend.<name>]  that backend's parameters; arrays are axes for its trials only
//   distill only: [data], [teacher], [eval]
//
// Every mistake is a ConfigError whose what() reads "file:line:column: message".
#include <attnlab/params.hpp>
#include <attnlab/registry.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace attnlab {

struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Axis {
  std::string name;                   // "seq_len", or "window" inside a backend table
  std::vector<nlohmann::json> values; // one value = a fixed setting
  int line = 0;                       // for ordering and messages
};

struct SweepSpec {
  std::string path;       // file it came from
  std::string source;     // the file's text, stored with the sweep
  std::string name, kind, description;
  std::uint64_t seed = 0;
  std::int64_t warmup = 2, repeats = 5, threads = 0;  // threads 0 = all cores
  double min_time_s = 0.0;  // bench: keep repeating past `repeats` until this much is timed
  std::string device = "cpu";
  std::vector<Axis> grid;                               // ordered by line
  std::map<std::string, std::vector<Axis>> backend_axes;  // per backend name
  nlohmann::json sections = nlohmann::json::object();  // distill: data, teacher, eval
};

struct TrialSpec {
  std::string key;            // stable: hash of `config`
  std::string name;           // readable: "dense/seq_len:1024/pass:fwd"
  std::string backend;
  std::map<std::string, ParamValue> backend_params;  // resolved against the plugin schema
  nlohmann::json config;      // everything that determines the trial, resolved
};

// Parses and validates a sweep file. `overrides` are "section.key=value" strings (TOML
// values) applied after parsing (from the command line). Backends and their parameters are
// checked against the registry's plugins.
SweepSpec load_sweep(const std::string& path, const PluginRegistry& registry,
                     const std::vector<std::string>& overrides = {});

// Cartesian product of the grid (and each backend's own axes), resolved and keyed.
std::vector<TrialSpec> expand_trials(const SweepSpec& sweep, const PluginRegistry& registry);

// Hex digest used for trial keys (FNV-1a 64 over the canonical JSON dump).
std::string stable_hash(const std::string& text);

// ParamValue <-> JSON.
nlohmann::json to_json(const ParamValue& value);
ParamValue to_param(const nlohmann::json& value);

}  // namespace attnlab
