#pragma once
// Plugin side of the contract. A plugin is a MODULE .so that ends with exactly one
//
//   ATTNLAB_PLUGIN(MyBackendClass, "name", "one-line description")
//
// where MyBackendClass derives from attnlab::AttentionBackend, has a constructor taking
// `const attnlab::BackendInit&`, and a `static std::vector<attnlab::ParamSpec> schema()`.
// The macro exports two C symbols:
//   attnlab_plugin_api()        -> (major << 16) | minor, read before anything else
//   attnlab_plugin_descriptor() -> the descriptor below
// The host refuses a plugin built against another API major, or a newer minor than its own.
#include <attnlab/backend.hpp>
#include <attnlab/export.hpp>
#include <attnlab/params.hpp>

#include <cstdint>
#include <memory>
#include <vector>

// Bump the minor for additions a host can ignore, the major for anything that moves or
// changes existing layout (BackendInit, PluginDescriptor, AttentionBackend's vtable).
#define ATTNLAB_API_MAJOR 1
#define ATTNLAB_API_MINOR 0

namespace attnlab {

struct PluginDescriptor {
  int api_major = ATTNLAB_API_MAJOR;
  int api_minor = ATTNLAB_API_MINOR;
  const char* name = "";
  const char* description = "";
  std::vector<ParamSpec> (*schema)() = nullptr;
  std::shared_ptr<AttentionBackend> (*create)(const BackendInit&) = nullptr;
};

constexpr std::uint32_t pack_api_version(int major, int minor) {
  return (static_cast<std::uint32_t>(major) << 16) | static_cast<std::uint32_t>(minor);
}

}  // namespace attnlab

#define ATTNLAB_PLUGIN(BackendClass, NAME, DESCRIPTION)                                   \
  extern "C" ATTNLAB_API std::uint32_t attnlab_plugin_api() {                            \
    return ::attnlab::pack_api_version(ATTNLAB_API_MAJOR, ATTNLAB_API_MINOR);            \
  }                                                                                      \
  extern "C" ATTNLAB_API const ::attnlab::PluginDescriptor* attnlab_plugin_descriptor() { \
    static const ::attnlab::PluginDescriptor descriptor{                                 \
        ATTNLAB_API_MAJOR, ATTNLAB_API_MINOR, NAME, DESCRIPTION, &BackendClass::schema,  \
        [](const ::attnlab::BackendInit& init) -> std::shared_ptr<::attnlab::AttentionBackend> { \
          return std::make_shared<BackendClass>(init);                                   \
        }};                                                                              \
    return &descriptor;                                                                  \
  }
