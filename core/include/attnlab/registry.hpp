#pragma once
// Host side of the plugin contract: finds, checks and loads backend plugins (Boost.DLL).
//
// Search path, in order: every directory in $ATTNLAB_PLUGIN_PATH (':'-separated), then the
// `plugins/` directory next to the running executable's `bin/` (build tree and install tree
// share that layout). Loaded libraries are never unloaded while the registry lives, and every
// backend it creates holds its library too, so a backend may outlive the registry.
#include <attnlab/backend.hpp>
#include <attnlab/catalog.hpp>
#include <attnlab/export.hpp>
#include <attnlab/plugin.hpp>

#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace attnlab {

// A plugin file that could not be used: missing, not a plugin, wrong API version, missing
// symbol. what() names the file and says why.
struct ATTNLAB_API PluginError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct LoadedPlugin {
  std::string path;
  const PluginDescriptor* descriptor = nullptr;
  std::vector<ParamSpec> schema;
  std::string version;            // the plugin's own (descriptor), "" when it gives none
  std::string build_id;           // FNV-1a 64 of the .so's bytes, hex: which build made a result
  std::shared_ptr<void> library;  // the boost::dll::shared_library, kept alive
};

class ATTNLAB_API PluginRegistry : public BackendCatalog {
 public:
  // Directories searched by discover(): $ATTNLAB_PLUGIN_PATH entries, then <exe>/../plugins.
  static std::vector<std::string> default_search_path();

  // Loads every *.so in the directories; files that fail are remembered in problems() and
  // skipped, so one broken plugin does not hide the others. A later duplicate name is skipped.
  void discover(const std::vector<std::string>& directories = default_search_path());

  // Loads one file or throws PluginError. Returns the registered plugin; the reference stays
  // valid as long as the registry (later loads do not move it).
  const LoadedPlugin& load(const std::string& path);

  std::vector<std::string> names() const;  // sorted
  const LoadedPlugin* find(const std::string& name) const;
  // Throws for an unknown name, listing the available names, the directories searched and
  // ATTNLAB_PLUGIN_PATH.
  const LoadedPlugin& get(const std::string& name) const;
  const std::vector<std::string>& problems() const { return problems_; }

  // Resolves `given` against the schema and runs the plugin's validate hook, if any; throws
  // ParamError naming the key. What the sweep loader calls for every trial.
  Params validate(const std::string& name, const std::map<std::string, ParamValue>& given) const;

  // BackendCatalog, for the sweep loader: names(), the schema, validate().
  std::vector<std::string> backend_names() const override { return names(); }
  const std::vector<ParamSpec>* backend_schema(const std::string& name) const override;
  Params check_params(const std::string& name, const std::map<std::string, ParamValue>& given) const override {
    return validate(name, given);
  }

  // validate(), then builds the backend.
  std::shared_ptr<AttentionBackend> create(const std::string& name, BackendInit init,
                                           const std::map<std::string, ParamValue>& given) const;

 private:
  std::vector<std::unique_ptr<LoadedPlugin>> plugins_;
  std::vector<std::string> problems_;
  std::vector<std::string> searched_;  // discover()'s directories, for the unknown-backend message
};

}  // namespace attnlab
