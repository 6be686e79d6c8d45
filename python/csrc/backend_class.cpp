// torch.classes.attnlab.Backend: any installed attnlab plugin as a TorchScript custom class,
// so Python can call it, train its parameters and read its layouts.
//
//   Backend(name, params {str: str}, n_heads H, head_dim D, max_seq_len, seed)
//   forward(q [B, H, T, D], k [B, H, T, D], v [B, H, T, D]) -> out [B, H, T, D]   (causal,
//     differentiable in q, k, v and the plugin's parameters; attnlab/backend.hpp)
//   parameters() -> the plugin's parameter tensors: the very tensors forward uses, so an
//     optimizer that updates them in place (every torch.optim one) trains the plugin
//   parameter_names(), set_hard(bool), hard(), train(bool), regularizer(), statistics(),
//   on_step(step, total), layouts(T) -> the layout lists (layout_args.hpp), flattened as
//     [row_ptr..., col_idx..., tile_mask..., masks...] (n layouts each)
//
// Plugins are found as the CLI finds them (registry.hpp): every directory of
// $ATTNLAB_PLUGIN_PATH, then `plugins/` beside this library's `lib/` (where the build and
// install trees keep them). Parameter values come as strings and are read by the plugin's
// schema type, so Python needs no variant type; the schema then checks them as in a sweep.
#include <attnlab/attend.hpp>
#include <attnlab/registry.hpp>

#include <torch/custom_class.h>
#include <torch/library.h>

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>

#include <map>
#include <mutex>
#include <sstream>

namespace attnlab::ops {
namespace {

std::vector<std::string> search_path() {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("ATTNLAB_PLUGIN_PATH")) {
    std::stringstream in(env);
    std::string dir;
    while (std::getline(in, dir, ':'))
      if (!dir.empty()) dirs.push_back(dir);
  }
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&search_path), &info) != 0 && info.dli_fname) {
    std::string self = info.dli_fname;  // .../lib/libattnlab_ops.so
    const auto slash = self.rfind('/');
    const std::string lib = slash == std::string::npos ? "." : self.substr(0, slash);
    dirs.push_back(lib + "/../plugins");  // the build tree (and an install with libdir "lib")
    // An install whose libdir is deeper (lib/x86_64-linux-gnu): plugins/ sits under the prefix.
    const std::string installed = lib + "/" + ATTNLAB_OPS_PLUGIN_DIR;
    if (installed != dirs.back()) dirs.push_back(installed);
  }
  return dirs;
}

std::string joined(const std::vector<std::string>& items, const char* sep = ", ") {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : sep) + item;
  return out;
}

// One registry per process, discovered on first use; plugins are never unloaded.
PluginRegistry& registry() {
  static PluginRegistry instance;
  static std::once_flag once;
  std::call_once(once, [] { instance.discover(search_path()); });
  return instance;
}

ParamValue parse_value(const std::string& backend, const std::string& key, const std::string& text,
                       const std::vector<ParamSpec>& schema) {
  const auto spec = std::find_if(schema.begin(), schema.end(), [&](const ParamSpec& s) { return s.name == key; });
  if (spec == schema.end()) return text;  // unknown: resolve_params names it with the known ones
  auto bad = [&](const char* what) {
    TORCH_CHECK(false, "attnlab backend '", backend, "': parameter '", key, "' must be ", what, " (",
                spec->allowed(), "), got '", text, "'");
    return ParamValue{};
  };
  try {
    std::size_t used = 0;
    switch (spec->type) {
      case ParamType::Bool:
        if (text == "true" || text == "1") return true;
        if (text == "false" || text == "0") return false;
        return bad("a bool");
      case ParamType::Int: {
        const std::int64_t value = std::stoll(text, &used);
        return used == text.size() ? ParamValue{value} : bad("an int");
      }
      case ParamType::Float: {
        const double value = std::stod(text, &used);
        return used == text.size() ? ParamValue{value} : bad("a float");
      }
      case ParamType::String: return text;
    }
  } catch (const std::logic_error&) {  // stoll / stod: not a number, out of range
    return bad(spec->type == ParamType::Int ? "an int" : "a float");
  }
  return text;
}

struct Backend : torch::CustomClassHolder {
  std::string name;
  std::shared_ptr<AttentionBackend> impl;
  std::int64_t heads = 1;

  Backend(std::string name_, c10::Dict<std::string, std::string> params, std::int64_t n_heads,
          std::int64_t head_dim, std::int64_t max_seq_len, std::int64_t seed)
      : name(std::move(name_)), heads(n_heads) {
    TORCH_CHECK(n_heads >= 1 && head_dim >= 1 && max_seq_len >= 1, "attnlab backend '", name,
                "': n_heads, head_dim and max_seq_len must be >= 1, got ", n_heads, ", ", head_dim,
                ", ", max_seq_len);
    PluginRegistry& plugins = registry();
    const LoadedPlugin* plugin = plugins.find(name);
    if (!plugin) {
      const auto& problems = plugins.problems();
      TORCH_CHECK(false, "attnlab: unknown backend '", name, "' (available: ",
                  plugins.names().empty() ? "none" : joined(plugins.names()), "; searched ",
                  joined(search_path()), ": set ATTNLAB_PLUGIN_PATH to add a directory)",
                  problems.empty() ? "" : "; plugins that failed to load: " + joined(problems, "; "));
    }
    std::map<std::string, ParamValue> given;
    for (const auto& entry : params) given[entry.key()] = parse_value(name, entry.key(), entry.value(), plugin->schema);
    BackendInit init;
    init.n_heads = n_heads;
    init.head_dim = head_dim;
    init.max_seq_len = max_seq_len;
    init.seed = static_cast<std::uint64_t>(seed);
    try {
      impl = plugins.create(name, init, given);
    } catch (const ParamError& e) {
      TORCH_CHECK(false, "attnlab backend '", name, "': ", e.what(), e.hint.empty() ? "" : " (" + e.hint + ")");
    } catch (const std::exception& e) {
      TORCH_CHECK(false, "attnlab backend '", name, "': ", e.what());
    }
  }

  // Through the host's one checked door: a wrong shape, dtype or device is refused naming the
  // backend, as in a sweep, before the plugin sees it.
  at::Tensor forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
    try {
      return attend(*impl, q, k, v, heads);
    } catch (const std::invalid_argument& e) {
      TORCH_CHECK_VALUE(false, e.what());
    } catch (const std::logic_error& e) {
      TORCH_CHECK(false, e.what());
    }
  }
  std::vector<at::Tensor> parameters() { return impl->parameters(/*recurse=*/true); }
  std::vector<std::string> parameter_names() {
    std::vector<std::string> names;
    for (const auto& item : impl->named_parameters(/*recurse=*/true)) names.push_back(item.key());
    return names;
  }
  void set_hard(bool hard) { impl->set_hard(hard); }
  bool hard() { return impl->hard(); }
  void train(bool on) { impl->train(on); }
  c10::optional<at::Tensor> regularizer() {
    at::Tensor r = impl->regularizer();
    return r.defined() ? c10::optional<at::Tensor>(r) : c10::nullopt;
  }
  c10::Dict<std::string, double> statistics() {
    c10::Dict<std::string, double> out;
    for (const auto& s : impl->statistics()) out.insert(s.name, s.value);
    return out;
  }
  void on_step(std::int64_t step, std::int64_t total) { impl->on_step(step, total); }
  std::vector<at::Tensor> layouts(std::int64_t T) {
    TORCH_CHECK(T >= 1, "attnlab backend '", name, "': layouts(T) needs T >= 1, got ", T);
    std::vector<at::Tensor> row_ptr, col_idx, tile_mask, masks;
    for (const auto& layout : impl->layouts(T)) {
      row_ptr.push_back(layout->row_ptr);
      col_idx.push_back(layout->col_idx);
      tile_mask.push_back(layout->tile_mask);
      masks.push_back(layout->masks.defined() ? layout->masks : at::zeros({0, layout->tile, layout->tile}, at::kBool));
    }
    std::vector<at::Tensor> flat;
    for (auto* list : {&row_ptr, &col_idx, &tile_mask, &masks}) flat.insert(flat.end(), list->begin(), list->end());
    return flat;
  }
};

std::vector<std::string> backend_names() { return registry().names(); }

// Each plugin's parameters, one line per parameter: "name: allowed (default d) help".
std::vector<std::string> backend_schema(const std::string& name) {
  const LoadedPlugin* plugin = registry().find(name);
  TORCH_CHECK(plugin, "attnlab: unknown backend '", name, "' (available: ", joined(registry().names()), ")");
  std::vector<std::string> lines;
  for (const auto& spec : plugin->schema)
    lines.push_back(spec.name + ": " + spec.allowed() + " (default " + to_string(spec.default_value) + ") " + spec.help);
  return lines;
}

}  // namespace
}  // namespace attnlab::ops

TORCH_LIBRARY_FRAGMENT(attnlab, m) {
  using attnlab::ops::Backend;
  m.class_<Backend>("Backend")
      .def(torch::init<std::string, c10::Dict<std::string, std::string>, std::int64_t, std::int64_t,
                       std::int64_t, std::int64_t>())
      .def("forward", &Backend::forward)
      .def("parameters", &Backend::parameters)
      .def("parameter_names", &Backend::parameter_names)
      .def("set_hard", &Backend::set_hard)
      .def("hard", &Backend::hard)
      .def("train", &Backend::train)
      .def("regularizer", &Backend::regularizer)
      .def("statistics", &Backend::statistics)
      .def("on_step", &Backend::on_step)
      .def("layouts", &Backend::layouts);
  m.def("backends() -> str[]", TORCH_FN(attnlab::ops::backend_names));
  m.def("backend_schema(str name) -> str[]", TORCH_FN(attnlab::ops::backend_schema));
  m.def("plugin_search_path() -> str[]", TORCH_FN(attnlab::ops::search_path));
}
