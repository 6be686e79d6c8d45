// The plugin loader against real .so files built for it (tests/fake_plugins/loader_cases):
// one good backend, and one file per way a plugin can be unusable. Each refusal must be a
// PluginError naming the file (and, for version mismatches, both versions).
#include <attnlab/registry.hpp>

#include <ATen/ATen.h>
#include "catch.hpp"

#include <dlfcn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>

using attnlab::PluginError;
using attnlab::PluginRegistry;

namespace {

const std::string kFakeDir = ATTNLAB_BINARY_DIR "/fake_plugins";
std::string fake(const std::string& file) { return kFakeDir + "/" + file; }

std::string version(int major, int minor) { return std::to_string(major) + "." + std::to_string(minor); }
const std::string kHostApi = version(ATTNLAB_API_MAJOR, ATTNLAB_API_MINOR);

// The message of the PluginError that loading `path` throws ("" if it loads).
std::string load_error(const std::string& path) {
  PluginRegistry registry;
  try {
    registry.load(path);
  } catch (const PluginError& e) {
    return e.what();
  }
  return "";
}

// What the fake backend computes: the mean of v over s <= t, times gain (float64).
at::Tensor uniform_causal_reference(const at::Tensor& v, double gain) {
  auto v64 = v.to(at::kDouble);
  auto out = at::empty_like(v64);
  for (int64_t t = 0; t < v.size(2); ++t)
    out.select(2, t).copy_(v64.narrow(2, 0, t + 1).mean(2) * gain);
  return out;
}

// Runs a shell command, returns its stdout and sets `status` to its exit status.
std::string run_command(const std::string& command, int& status) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::array<char, 4096> buffer{};
  while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) out.append(buffer.data(), n);
  const int raw = pclose(pipe);
  status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
  return out;
}

bool library_is_mapped(const std::string& path) {
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (handle) dlclose(handle);  // NOLOAD still took a reference
  return handle != nullptr;
}

}  // namespace

TEST_CASE("a good plugin loads with its descriptor and schema") {
  PluginRegistry registry;
  const auto& plugin = registry.load(fake("fake_good.so"));
  CHECK(plugin.path == fake("fake_good.so"));
  CHECK(std::string(plugin.descriptor->name) == "fake_good");
  CHECK(plugin.descriptor->api_major == ATTNLAB_API_MAJOR);
  CHECK(plugin.descriptor->api_minor == ATTNLAB_API_MINOR);
  REQUIRE(plugin.schema.size() == 3);
  CHECK(plugin.schema[0].name == "gain");
  CHECK(registry.names() == std::vector<std::string>{"fake_good"});
  CHECK(registry.find("fake_good") == &plugin);
  CHECK(registry.find("dense") == nullptr);
}

TEST_CASE("a plugin built for another API major is refused, naming file and both versions") {
  const auto path = fake("fake_wrong_major.so");
  const auto what = load_error(path);
  CHECK_THAT(what, Catch::Contains(path) && Catch::Contains(version(ATTNLAB_API_MAJOR + 1, ATTNLAB_API_MINOR)) &&
                       Catch::Contains(kHostApi) && Catch::Contains("major"));
}

TEST_CASE("a plugin built for a newer API minor is refused, naming file and both versions") {
  const auto path = fake("fake_newer_minor.so");
  const auto what = load_error(path);
  CHECK_THAT(what, Catch::Contains(path) && Catch::Contains(version(ATTNLAB_API_MAJOR, ATTNLAB_API_MINOR + 1)) &&
                       Catch::Contains(kHostApi) && Catch::Contains("newer minor"));
}

TEST_CASE("a shared library without the plugin symbols is not a plugin") {
  const auto path = fake("not_a_plugin.so");
  CHECK_THAT(load_error(path), Catch::Contains(path) && Catch::Contains("not an attnlab plugin") &&
                                   Catch::Contains("attnlab_plugin_api"));
}

TEST_CASE("a plugin exporting the API version but no descriptor names the missing symbol") {
  const auto path = fake("fake_no_descriptor.so");
  CHECK_THAT(load_error(path), Catch::Contains(path) && Catch::Contains("missing symbol attnlab_plugin_descriptor"));
}

TEST_CASE("a text file named .so cannot be loaded, and the dynamic loader says why") {
  const auto path = fake("x.so");
  // The reason comes from dlerror() (glibc: "invalid ELF header" / "file too short").
  CHECK_THAT(load_error(path), Catch::Contains(path) && Catch::Contains("cannot be loaded as a shared library") &&
                                   (Catch::Contains("ELF") || Catch::Contains("file too short")));
}

TEST_CASE("a schema whose default its own range refuses is refused at load, naming file and parameter") {
  const auto path = fake("fake_bad_default.so");
  CHECK_THAT(load_error(path), Catch::Contains(path) && Catch::Contains("default is refused by its own range") &&
                                   Catch::Contains("parameter 'gain' = nan") && Catch::Contains("float in [0, 10]"));
}

TEST_CASE("an unknown backend names the directories searched and ATTNLAB_PLUGIN_PATH") {
  PluginRegistry registry;
  registry.discover({kFakeDir});
  CHECK_THROWS_WITH(registry.get("sigmoid"), Catch::Contains("unknown backend 'sigmoid'") &&
                                                 Catch::Contains("searched " + kFakeDir) &&
                                                 Catch::Contains("ATTNLAB_PLUGIN_PATH") &&
                                                 Catch::Contains("failed to load: attnlab backends lists why"));
  CHECK_THROWS_WITH(PluginRegistry().get("sigmoid"), Catch::Contains("searched no directory"));
}

TEST_CASE("a missing file is refused with its path") {
  const auto path = fake("does_not_exist.so");
  CHECK_THAT(load_error(path), Catch::Contains(path) && Catch::Contains("no such file"));
}

TEST_CASE("a second plugin with a taken backend name is refused, naming both files") {
  PluginRegistry registry;
  registry.load(fake("fake_good.so"));
  try {
    registry.load(fake("fake_good_duplicate.so"));
    FAIL("duplicate backend name accepted");
  } catch (const PluginError& e) {
    CHECK_THAT(e.what(), Catch::Contains(fake("fake_good_duplicate.so")) && Catch::Contains("'fake_good'") &&
                             Catch::Contains(fake("fake_good.so")));
  }
  CHECK(registry.names() == std::vector<std::string>{"fake_good"});
}

TEST_CASE("discover loads the good plugins of a directory and records every broken one") {
  PluginRegistry registry;
  registry.discover({kFakeDir, kFakeDir + "/no_such_directory"});
  CHECK(registry.names() == std::vector<std::string>{"fake_good"});
  const std::vector<std::string> broken = {"fake_bad_default.so", "fake_good_duplicate.so", "fake_newer_minor.so", "fake_no_descriptor.so",
                                           "fake_wrong_major.so", "not_a_plugin.so", "x.so"};
  CHECK(registry.problems().size() == broken.size());
  for (const auto& file : broken) {
    INFO(file);
    const auto& problems = registry.problems();
    CHECK(std::count_if(problems.begin(), problems.end(),
                        [&](const std::string& p) { return p.find(fake(file) + ":") != std::string::npos; }) == 1);
  }
}

TEST_CASE("default search path: ATTNLAB_PLUGIN_PATH entries first, then <exe>/../plugins") {
  const char* saved = std::getenv("ATTNLAB_PLUGIN_PATH");
  const std::string restore = saved ? saved : "";
  setenv("ATTNLAB_PLUGIN_PATH", "/tmp/a::/tmp/b", 1);
  const auto dirs = PluginRegistry::default_search_path();
  saved ? setenv("ATTNLAB_PLUGIN_PATH", restore.c_str(), 1) : unsetenv("ATTNLAB_PLUGIN_PATH");
  REQUIRE(dirs.size() == 3);
  CHECK(dirs[0] == "/tmp/a");
  CHECK(dirs[1] == "/tmp/b");
  CHECK_THAT(dirs[2], Catch::EndsWith("/bin/../plugins") || Catch::EndsWith("/plugins"));
}

TEST_CASE("create resolves parameters against the plugin's schema") {
  PluginRegistry registry;
  registry.load(fake("fake_good.so"));
  const auto v = at::randn({2, 3, 7, 5});

  SECTION("given values reach the backend, defaults fill the rest") {
    auto backend = registry.create("fake_good", {}, {{"gain", std::int64_t{2}}});
    CHECK(at::allclose(backend->forward(v, v, v).to(at::kDouble), uniform_causal_reference(v, 2.0), 1e-5, 1e-6));
    auto plain = registry.create("fake_good", {}, {});
    CHECK(at::allclose(plain->forward(v, v, v).to(at::kDouble), uniform_causal_reference(v, 1.0), 1e-5, 1e-6));
  }
  SECTION("an unknown key is a ParamError naming it") {
    try {
      registry.create("fake_good", {}, {{"gian", 2.0}});
      FAIL("unknown key accepted");
    } catch (const attnlab::ParamError& e) {
      CHECK(e.key == "gian");
      CHECK_THAT(e.what(), Catch::Contains("gain"));
    }
  }
  SECTION("an out of range value is a ParamError naming key and range") {
    try {
      registry.create("fake_good", {}, {{"gain", 11.0}});
      FAIL("out of range value accepted");
    } catch (const attnlab::ParamError& e) {
      CHECK(e.key == "gain");
      CHECK_THAT(e.what(), Catch::Contains("float in [0, 10]"));
    }
  }
  SECTION("an unknown backend is a PluginError listing the available ones") {
    CHECK_THROWS_WITH(registry.create("fake_bad", {}, {}),
                      Catch::Contains("unknown backend 'fake_bad'") && Catch::Contains("fake_good"));
  }
}

TEST_CASE("a plugin object is an AttentionBackend across the library boundary") {
  PluginRegistry registry;
  registry.load(fake("fake_good.so"));
  std::shared_ptr<torch::nn::Module> module = registry.create("fake_good", {}, {});
  CHECK(module->name() == "FakeBackend");
  auto* backend = dynamic_cast<attnlab::AttentionBackend*>(module.get());
  REQUIRE(backend != nullptr);
  // A default hook, implemented in libattnlab_core, answers through the plugin's vtable.
  CHECK(backend->statistics().empty());
  CHECK_FALSE(backend->regularizer().defined());
}

TEST_CASE("a backend keeps its library loaded after the registry is gone") {
  // In a child process, so that a use-after-unload crash fails this test instead of ending
  // the test binary. Small tensors keep ATen single-threaded (OpenMP and fork do not mix).
  const std::string path = fake("fake_good.so");
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    int code = 0;
    try {
      std::shared_ptr<attnlab::AttentionBackend> backend;
      {
        PluginRegistry registry;
        registry.load(path);
        backend = registry.create("fake_good", {}, {{"gain", 3.0}});
      }
      if (!library_is_mapped(path)) code = 10;  // unloaded under a live object
      const auto v = at::randn({1, 2, 5, 3});
      if (!at::allclose(backend->forward(v, v, v).to(at::kDouble), uniform_causal_reference(v, 3.0), 1e-5, 1e-6))
        code = 11;
      backend.reset();
      // The last owner is gone: the library must really go, or this test could not tell a
      // missing reference from a library that is never unloaded.
      if (code == 0 && library_is_mapped(path)) code = 12;
    } catch (...) {
      code = 13;
    }
    _exit(code);
  }
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  INFO("10: unloaded while a backend lived, 11: wrong output, 12: never unloaded, 13: exception");
  REQUIRE(WIFEXITED(status));  // not killed by a signal (SIGSEGV after dlclose)
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("attnlab backends lists the in-tree backends with their parameters") {
  int status = -1;
  const auto out = run_command("env -u ATTNLAB_PLUGIN_PATH " ATTNLAB_BINARY_DIR "/bin/attnlab backends", status);
  INFO(out);
  CHECK(status == 0);
  CHECK_THAT(out, Catch::Contains("dense") && Catch::Contains("execution") && Catch::Contains("sdpa") &&
                      Catch::Contains("tile"));
  CHECK_THAT(out, !Catch::Contains("fake_good"));  // test plugins stay out of the normal search
}

TEST_CASE("attnlab backends also searches ATTNLAB_PLUGIN_PATH") {
  int status = -1;
  const auto out = run_command("ATTNLAB_PLUGIN_PATH=" + kFakeDir + " " ATTNLAB_BINARY_DIR "/bin/attnlab backends", status);
  INFO(out);
  CHECK_THAT(out, Catch::Contains("fake_good") && Catch::Contains("gain") && Catch::Contains("dense"));
}
