#pragma once
// What a sweep loader needs to know of the backends: which exist, their parameter schemas,
// and whether a trial's values pass the plugin's own checks. PluginRegistry is one (it loads
// the plugins); a test or a fuzzer can give a fixed one. No LibTorch here.
#include <attnlab/params.hpp>

#include <map>
#include <string>
#include <vector>

namespace attnlab {

class BackendCatalog {
 public:
  virtual ~BackendCatalog() = default;
  virtual std::vector<std::string> backend_names() const = 0;  // sorted
  // The backend's schema, or nullptr when there is no backend of that name.
  virtual const std::vector<ParamSpec>* backend_schema(const std::string& name) const = 0;
  // Resolves `given` against the schema and runs the backend's validate hook; throws
  // ParamError naming the key.
  virtual Params check_params(const std::string& name, const std::map<std::string, ParamValue>& given) const = 0;

  // "unknown backend 'x' (available: a, b)".
  std::string unknown_backend(const std::string& name) const {
    std::string known;
    for (const auto& n : backend_names()) known += (known.empty() ? "" : ", ") + n;
    return "unknown backend '" + name + "' (available: " + (known.empty() ? "none found" : known) + ")";
  }
};

}  // namespace attnlab
