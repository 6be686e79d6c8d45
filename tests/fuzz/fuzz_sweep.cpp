// Sweep files: any text is refused with ConfigError (file:line:column) or loads and expands
// into trials whose keys are all distinct. The kind schemas are the real ones
// (trials/schemas.hpp); the backends a fixed catalog: "dense" (an execution choice, a tile)
// and "masks" (a pattern the real plugin checks with the mask grammar in its validate hook).
#include "runtime/config.hpp"
#include "trials/schemas.hpp"

#include <attnlab/mask_expr.hpp>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <set>
#include <string>

namespace {

class Catalog : public attnlab::BackendCatalog {
 public:
  Catalog() {
    using attnlab::ParamSpec;
    const auto tile = ParamSpec::integer("tile", 64, 16, 256, "tile");
    schemas_["dense"] = {ParamSpec::choice("execution", "sdpa", {"sdpa", "math", "block_sparse"}, "how"), tile};
    schemas_["masks"] = {ParamSpec::text("pattern", "sink:4|window:256", "mask"),
                         ParamSpec::choice("execution", "reference", {"reference", "block_sparse"}, "how"), tile};
  }
  std::vector<std::string> backend_names() const override { return {"dense", "masks"}; }
  const std::vector<attnlab::ParamSpec>* backend_schema(const std::string& name) const override {
    auto it = schemas_.find(name);
    return it == schemas_.end() ? nullptr : &it->second;
  }
  attnlab::Params check_params(const std::string& name,
                               const std::map<std::string, attnlab::ParamValue>& given) const override {
    auto params = attnlab::resolve_params(schemas_.at(name), given);
    if (name == "masks") attnlab::masks::canonical_param("pattern", params.get_string("pattern"));
    return params;
  }

 private:
  std::map<std::string, std::vector<attnlab::ParamSpec>> schemas_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const Catalog catalog;
  static const auto kinds = attnlab::trials::all_schemas();
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const auto sweep = attnlab::load_sweep_source("fuzz.toml", text, catalog, kinds);
    // At most 10^4 trials per input (the CLI allows 10^6): the fuzzer then spends its time on
    // parsing and validation rather than on hashing huge products.
    const auto trials = attnlab::expand_trials(sweep, catalog, 1e4);
    std::set<std::string> keys;
    for (const auto& t : trials) keys.insert(t.key);
    if (keys.size() != trials.size()) std::abort();
  } catch (const attnlab::ConfigError&) {
  }
  return 0;
}
