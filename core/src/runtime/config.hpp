#pragma once
// Sweep files: parse (toml++), validate everything before anything runs, expand the grid.
//
//   [sweep]   the keys below (SweepHead)
//   [grid]    backend, and the trial kind's grid keys; every array is an axis, trials are
//             the cartesian product (file order, first axis outermost); scalars are fixed
//   [backend.<name>]  that backend's parameters; arrays are axes for its trials only
//   the kind's own sections (distill: [data], [teacher], [eval])
//   [slurm]   how `attnlab submit` asks a Slurm cluster for resources (SlurmSpec)
//
// Keys and their allowed values come from their declarations (base/keys.hpp): the kinds'
// KindSchema and SweepHead here. Expanding a sweep checks every trial's backend parameters
// with the plugin's own validate hook too. Every mistake is a ConfigError whose what() reads
// "file:line:column: message", and nothing has been written anywhere when it is thrown.
// No LibTorch in this layer's header: the fuzzer (tests/fuzz) drives it as it is.
#include "base/keys.hpp"

#include <attnlab/catalog.hpp>
#include <attnlab/params.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace attnlab {

struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// [sweep]
#define ATTNLAB_SWEEP_KEYS(KEY)                                                                       \
  KEY(std::string, name, "", keys::any(), "the sweep's name, under which its trials are stored (required)") \
  KEY(std::string, kind, "", keys::any(), "trial kind: bench or distill (required)")                  \
  KEY(std::string, description, "", keys::any(), "free text stored with the sweep")                   \
  KEY(std::uint64_t, seed, 0, keys::range(0, 1e12), "seed of the inputs, initialisations and batches") \
  KEY(std::int64_t, warmup, 2, keys::range(0, 1000), "bench: untimed calls before timing (distill: 0)") \
  KEY(std::int64_t, repeats, 5, keys::range(1, 100000), "bench: timed calls per trial (distill: 1)")   \
  KEY(double, min_time_s, 0.0, keys::range(0, 3600),                                                  \
      "bench: keep repeating past `repeats` until the timed calls add up to this (0: off)")            \
  KEY(std::int64_t, threads, 0, keys::range(0, 1024), "intra-op threads (0: all cores)")              \
  KEY(std::string, device, "cpu", keys::one_of({"cpu", "cuda"}), "where the tensors live")           \
  KEY(double, trial_timeout_s, 0.0, keys::range(0, 1e7),                                              \
      "kill a trial's process after this long and record it as timed out (0: no limit)")            \
  KEY(std::int64_t, max_attempts, 1, keys::range(1, 100),                                             \
      "attempts per trial: a crash, a timeout or a lost worker is retried until this many")            \
  KEY(std::int64_t, rounds, 1, keys::range(1, 1000),                                                  \
      "bench: run every trial this many times, each round in a new shuffled order, and pool the repeats") \
  KEY(std::int64_t, sample, 0, keys::range(0, 1e6),                                                   \
      "run only this many grid points, drawn uniformly without replacement with [sweep] seed (random search; 0: all)") \
  KEY(std::string, prune, "none", keys::one_of({"none", "median"}),                                   \
      "distill: stop a trial whose best prune_metric so far is worse than the median of the finished trials at that step") \
  KEY(std::string, prune_metric, "train/kl", keys::any(), "distill: the per-step metric the pruner compares (lower is better)") \
  KEY(std::int64_t, prune_warmup, 5, keys::range(0, 1e6), "distill: logged steps of a trial before the pruner may stop it") \
  KEY(std::int64_t, prune_min_trials, 3, keys::range(1, 1e6),                                        \
      "distill: finished trials of the same sweep and seq_len needed at a step before the pruner acts")
// How trials run (trial_timeout_s, max_attempts, rounds, sample, prune*) is not part of a
// trial's key: changing it never invalidates a result.
struct SweepHead {
  ATTNLAB_SWEEP_KEYS(ATTNLAB_KEY_FIELD)
};
const keys::Table<SweepHead>& sweep_keys();

// [slurm]: how `attnlab submit` asks for the cluster's resources (the command line overrides
// each). Like the execution keys above, none of it is part of a trial's key.
#define ATTNLAB_SLURM_KEYS(KEY)                                                                          \
  KEY(std::int64_t, tasks, 1, keys::range(1, 100000),                                                  \
      "array tasks; task i runs the trials with ordinal % tasks == i into its own shard database")       \
  KEY(std::string, partition, "", keys::any(), "partition (empty: the cluster's default)")              \
  KEY(std::string, time, "", keys::any(), "time limit per task, [D-]HH:MM:SS (empty: the partition's)")  \
  KEY(std::int64_t, cpus_per_task, 0, keys::range(0, 4096),                                            \
      "CPUs per task (0: Slurm's default); [sweep] threads = 0 then means this many")                    \
  KEY(std::int64_t, gpus, 0, keys::range(0, 64), "GPUs per task")                                        \
  KEY(std::string, mem, "", keys::any(), "memory per task, e.g. 16G (empty: the partition's default)")
struct SlurmSpec {
  ATTNLAB_SLURM_KEYS(ATTNLAB_KEY_FIELD)
};
const keys::Table<SlurmSpec>& slurm_keys();

// What a trial kind declares of its sweeps (trials/ provides them).
struct KindSchema {
  std::string name;
  std::vector<keys::Key> grid;                                          // beside `backend`
  std::vector<std::pair<std::string, std::vector<keys::Key>>> sections;  // e.g. ("data", ...)
  nlohmann::json sweep_defaults = nlohmann::json::object();             // [sweep] defaults it changes
  std::string summary;                                                  // one line, for docs
  std::vector<std::string> curves;  // per-step metrics it logs (a pruner may watch them)
  bool times_repeats = false;       // its trials time repeated calls ([sweep] rounds pools them)
};

struct Axis {
  std::string name;                    // "seq_len", or "window" inside a backend table
  std::vector<nlohmann::json> values;  // one value = a fixed setting
  std::vector<std::string> where;      // "file:line:column" of each value
  int line = 0;                        // for ordering
};

struct SweepSpec : SweepHead {
  std::string path;    // file it came from
  std::string source;  // the file's text, stored with the sweep
  std::vector<std::string> overrides;  // --set values applied on top of it
  std::vector<Axis> grid;                                 // ordered by line
  std::map<std::string, std::vector<Axis>> backend_axes;  // per backend name
  std::map<std::string, std::string> backend_where;       // [backend.X] table, or X in [grid] backend
  nlohmann::json sections = nlohmann::json::object();     // kind sections, checked
  SlurmSpec slurm;                                        // [slurm], defaults where absent
  std::map<std::string, std::string> head_where;          // [sweep] key -> "file:line:column"
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
// checked against the catalog's schemas, the kind-specific keys against `kinds`.
SweepSpec load_sweep(const std::string& path, const BackendCatalog& backends, const std::vector<KindSchema>& kinds,
                     const std::vector<std::string>& overrides = {});
// The same from the file's text (as stored with a sweep, or handed to a trial's child
// process); `path` names it in messages.
SweepSpec load_sweep_source(const std::string& path, const std::string& source, const BackendCatalog& backends,
                            const std::vector<KindSchema>& kinds, const std::vector<std::string>& overrides = {});

// Cartesian product of the grid (and each backend's own axes), resolved, checked with the
// plugins' validate hooks, and keyed. More than max_trials is refused.
inline constexpr double kMaxTrials = 1e6;
std::vector<TrialSpec> expand_trials(const SweepSpec& sweep, const BackendCatalog& backends,
                                     double max_trials = kMaxTrials);

// A permutation of 0..n-1 from `seed` (Fisher-Yates on mt19937_64 with a plain modulo: the
// same on every platform and standard library, which std::shuffle is not).
std::vector<std::size_t> seeded_permutation(std::size_t n, std::uint64_t seed);

// Hex digest of a trial's canonical JSON: the trial key (see config.cpp for its constants).
std::string stable_hash(const std::string& text);

// ParamValue -> JSON, and back (a JSON boolean, integer, number or string).
nlohmann::json to_json(const ParamValue& value);
ParamValue json_to_param(const nlohmann::json& value);

}  // namespace attnlab
