// Plugin loading with Boost.DLL. Order of checks for one file, each with its own message:
// exists -> loads as a shared library -> exports attnlab_plugin_api -> API version
// compatible -> exports attnlab_plugin_descriptor -> descriptor sane -> name not taken.
// Each loaded plugin is identified by its version and a hash of the file's bytes.
#include <attnlab/registry.hpp>

#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>
#include <boost/filesystem.hpp>

#include "base/hash.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <string_view>
#include <cstdlib>
#include <sstream>

namespace attnlab {
namespace fs = boost::filesystem;
namespace dll = boost::dll;

std::vector<std::string> PluginRegistry::default_search_path() {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("ATTNLAB_PLUGIN_PATH")) {
    std::stringstream in(env);
    std::string dir;
    while (std::getline(in, dir, ':'))
      if (!dir.empty()) dirs.push_back(dir);
  }
  boost::system::error_code ec;
  fs::path exe = dll::program_location(ec);
  if (!ec) dirs.push_back((exe.parent_path().parent_path() / "plugins").string());
  return dirs;
}

void PluginRegistry::discover(const std::vector<std::string>& directories) {
  for (const auto& dir : directories) {
    searched_.push_back(dir);
    boost::system::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    std::vector<fs::path> files;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
      if (it->path().extension() == ".so") files.push_back(it->path());
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      try {
        load(file.string());
      } catch (const PluginError& e) {
        problems_.push_back(e.what());
      }
    }
  }
}

// The plugin file's identity: a rebuild that changes its code changes this.
static std::string file_hash(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::uint64_t hash = base::kFnvOffset;
  std::array<char, 1 << 16> buffer{};
  while (in.read(buffer.data(), buffer.size()) || in.gcount() > 0)
    hash = base::fnv1a64(std::string_view(buffer.data(), static_cast<std::size_t>(in.gcount())), hash);
  return base::hex64(hash);
}

static std::string version_string(int major, int minor) {
  return std::to_string(major) + "." + std::to_string(minor);
}

const LoadedPlugin& PluginRegistry::load(const std::string& path) {
  boost::system::error_code ec;
  if (!fs::exists(path, ec)) throw PluginError("plugin " + path + ": no such file");

  auto library = std::make_shared<dll::shared_library>();
  library->load(path, dll::load_mode::rtld_now | dll::load_mode::rtld_local, ec);
  if (ec) {
    // Boost.DLL's error_code only says "bad file descriptor"; the loader's own reason (not an
    // ELF file, a missing dependency, an undefined symbol) is still waiting in dlerror().
    const char* why = ::dlerror();
    throw PluginError("plugin " + path + ": cannot be loaded as a shared library (" + (why ? why : ec.message()) + ")");
  }

  if (!library->has("attnlab_plugin_api"))
    throw PluginError("plugin " + path + ": not an attnlab plugin (no attnlab_plugin_api symbol; "
                      "did the source end with ATTNLAB_PLUGIN(...)?)");
  const std::uint32_t packed = library->get<std::uint32_t()>("attnlab_plugin_api")();
  const int major = static_cast<int>(packed >> 16), minor = static_cast<int>(packed & 0xffff);
  if (major != ATTNLAB_API_MAJOR || minor > ATTNLAB_API_MINOR)
    throw PluginError("plugin " + path + ": built for attnlab plugin API " + version_string(major, minor) +
                      ", this attnlab provides API " + version_string(ATTNLAB_API_MAJOR, ATTNLAB_API_MINOR) +
                      (major != ATTNLAB_API_MAJOR ? " (major versions differ)" : " (plugin needs a newer minor)") +
                      "; rebuild the plugin against this attnlab");

  if (!library->has("attnlab_plugin_descriptor"))
    throw PluginError("plugin " + path + ": missing symbol attnlab_plugin_descriptor");
  const PluginDescriptor* descriptor =
      library->get<const PluginDescriptor*()>("attnlab_plugin_descriptor")();
  if (!descriptor || !descriptor->name || !*descriptor->name || !descriptor->create || !descriptor->schema)
    throw PluginError("plugin " + path + ": descriptor is incomplete (name, schema and factory are required)");
  if (const auto* other = find(descriptor->name))
    throw PluginError("plugin " + path + ": backend name '" + descriptor->name + "' is already provided by " +
                      other->path);

  auto plugin = std::make_unique<LoadedPlugin>();
  plugin->path = path;
  plugin->descriptor = descriptor;
  plugin->schema = descriptor->schema();
  try {  // every default within its own range, or no trial could ever leave it unset
    resolve_params(plugin->schema, {});
  } catch (const ParamError& e) {
    throw PluginError("plugin " + path + ": its schema's default is refused by its own range: " + e.what());
  }
  plugin->version = descriptor->version ? descriptor->version : "";
  plugin->build_id = file_hash(path);
  plugin->library = library;
  plugins_.push_back(std::move(plugin));
  return *plugins_.back();
}

std::vector<std::string> PluginRegistry::names() const {
  std::vector<std::string> out;
  for (const auto& p : plugins_) out.push_back(p->descriptor->name);
  std::sort(out.begin(), out.end());
  return out;
}

const LoadedPlugin* PluginRegistry::find(const std::string& name) const {
  for (const auto& p : plugins_)
    if (name == p->descriptor->name) return p.get();
  return nullptr;
}

const LoadedPlugin& PluginRegistry::get(const std::string& name) const {
  if (const auto* p = find(name)) return *p;
  std::string known;
  for (const auto& n : names()) known += (known.empty() ? "" : ", ") + n;
  std::string searched;
  for (const auto& dir : searched_) searched += (searched.empty() ? "" : ":") + dir;
  throw PluginError("unknown backend '" + name + "' (available: " + (known.empty() ? "none found" : known) +
                    "; searched " + (searched.empty() ? "no directory" : searched) +
                    "; add a plugin's directory with ATTNLAB_PLUGIN_PATH=DIR[:DIR...]" +
                    (problems_.empty() ? "" : "; " + std::to_string(problems_.size()) +
                                                  " plugin file(s) there failed to load: attnlab backends lists why") +
                    ")");
}

const std::vector<ParamSpec>* PluginRegistry::backend_schema(const std::string& name) const {
  const LoadedPlugin* plugin = find(name);
  return plugin ? &plugin->schema : nullptr;
}

Params PluginRegistry::validate(const std::string& name, const std::map<std::string, ParamValue>& given) const {
  const LoadedPlugin& plugin = get(name);
  Params params = resolve_params(plugin.schema, given);
  if (plugin.descriptor->validate) plugin.descriptor->validate(params);
  return params;
}

std::shared_ptr<AttentionBackend> PluginRegistry::create(const std::string& name, BackendInit init,
                                                         const std::map<std::string, ParamValue>& given) const {
  const LoadedPlugin& plugin = get(name);
  init.params = validate(name, given);
  std::shared_ptr<AttentionBackend> made = plugin.descriptor->create(init);
  // The returned handle owns the plugin's library as well as the object: the object is
  // released first, the library after, so its code outlives every object made from it.
  struct Holder {
    std::shared_ptr<void> library;
    std::shared_ptr<AttentionBackend> backend;
    ~Holder() { backend.reset(); }
  };
  auto holder = std::make_shared<Holder>(Holder{plugin.library, std::move(made)});
  return std::shared_ptr<AttentionBackend>(holder, holder->backend.get());
}

}  // namespace attnlab
