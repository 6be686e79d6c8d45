#pragma once
// Plugin side of the contract. A plugin is a MODULE .so that ends with exactly one
//
//   ATTNLAB_PLUGIN(MyBackendClass, "name", "version", "one-line description")
//
// where MyBackendClass derives from attnlab::AttentionBackend and has
//   - a constructor taking `const attnlab::BackendInit&`,
//   - `static std::vector<attnlab::ParamSpec> schema()`: its parameters, checked by the host
//     before anything runs,
//   - optionally `static void validate(const attnlab::Params&)`: throws attnlab::ParamError
//     (key, message, hint) for resolved values the schema cannot refuse by itself (a
//     malformed mask expression, an impossible combination). The host calls it for every
//     trial of a sweep while loading it, so a bad value is reported as file:line:column
//     before any database is touched; the constructor may then trust its parameters.
// "version" is the plugin's own (e.g. "1.2.0"): bump it when results would change. The host
// also records a content hash of the .so, so results from an older build show up as stale.
//
// The macro exports two C symbols:
//   attnlab_plugin_api()        -> (major << 16) | minor, read before anything else
//   attnlab_plugin_descriptor() -> the descriptor below
// The host refuses a plugin built against another API major, or a newer minor than its own.
#include <attnlab/backend.hpp>
#include <attnlab/export.hpp>
#include <attnlab/params.hpp>

#include <cstdint>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

// Bump the minor for additions a host can ignore, the major for anything that moves or
// changes existing layout (BackendInit, PluginDescriptor, AttentionBackend's vtable).
// 2.0: plugin version and validate hook in the descriptor, layouts() and cost() hooks.
// 2.1: the HeadSearchable mixin (head_search.hpp): the host's per-head search.
#define ATTNLAB_API_MAJOR 2
#define ATTNLAB_API_MINOR 1

namespace attnlab {

struct PluginDescriptor {
  int api_major = ATTNLAB_API_MAJOR;
  int api_minor = ATTNLAB_API_MINOR;
  const char* name = "";
  const char* version = "";
  const char* description = "";
  std::vector<ParamSpec> (*schema)() = nullptr;
  void (*validate)(const Params&) = nullptr;  // optional
  std::shared_ptr<AttentionBackend> (*create)(const BackendInit&) = nullptr;
};

constexpr std::uint32_t pack_api_version(int major, int minor) {
  return (static_cast<std::uint32_t>(major) << 16) | static_cast<std::uint32_t>(minor);
}

namespace detail {
template <typename T, typename = void>
struct has_validate : std::false_type {};
template <typename T>
struct has_validate<T, std::void_t<decltype(T::validate(std::declval<const Params&>()))>> : std::true_type {};
// &T::validate when the backend class declares one, else nullptr.
template <typename T>
constexpr void (*validator())(const Params&) {
  if constexpr (has_validate<T>::value) return &T::validate;
  else return nullptr;
}
}  // namespace detail

}  // namespace attnlab

#define ATTNLAB_PLUGIN(BackendClass, NAME, VERSION, DESCRIPTION)                                \
  extern "C" ATTNLAB_API std::uint32_t attnlab_plugin_api() {                                  \
    return ::attnlab::pack_api_version(ATTNLAB_API_MAJOR, ATTNLAB_API_MINOR);                  \
  }                                                                                            \
  extern "C" ATTNLAB_API const ::attnlab::PluginDescriptor* attnlab_plugin_descriptor() {       \
    static const ::attnlab::PluginDescriptor descriptor{                                       \
        ATTNLAB_API_MAJOR, ATTNLAB_API_MINOR, NAME, VERSION, DESCRIPTION, &BackendClass::schema, \
        ::attnlab::detail::validator<BackendClass>(),                                          \
        [](const ::attnlab::BackendInit& init) -> std::shared_ptr<::attnlab::AttentionBackend> { \
          return std::make_shared<BackendClass>(init);                                         \
        }};                                                                                    \
    return &descriptor;                                                                        \
  }
