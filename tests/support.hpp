#pragma once
// What several test files share: the plugin registry (discovered once per process, from
// <build>/plugins next to <build>/bin where the tests live), running a shell command or the
// CLI and capturing stdout, reading a file whole, a fresh scratch folder, an in-memory sink.
#include <attnlab/registry.hpp>

#include "base/metrics.hpp"
#include "base/sink.hpp"

#include "catch.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace attnlab::test {

inline const PluginRegistry& registry() {
  static PluginRegistry r = [] {
    PluginRegistry reg;
    reg.discover();
    return reg;
  }();
  return r;
}

struct ShellResult {
  int status = -1;  // exit status, -1 when killed by a signal
  std::string out;  // stdout only; stderr goes to the test log unless the command redirects it
};

inline ShellResult shell(const std::string& command) {
  ShellResult r;
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::array<char, 4096> buffer{};
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) r.out.append(buffer.data(), n);
  const int raw = pclose(pipe);
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  return r;
}

// The attnlab CLI of this build.
inline std::string cli() { return std::string(ATTNLAB_BINARY_DIR) + "/bin/attnlab"; }

// <temp>/attnlab_test_<tag>_<pid>, emptied and created: a test's own scratch folder (left in
// place afterwards, for inspection when a test fails).
inline std::filesystem::path fresh_dir(const std::string& tag) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("attnlab_test_" + tag + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline std::string file_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A trial sink that keeps everything in memory: final(name) is a metric's one final value.
// Every test that runs a trial into it also checks that each metric the trial emits has a
// declaration (base/metrics.cpp), with the matching step kind: a new metric without one fails here.
struct MemorySink : TrialSink {
  std::map<std::string, std::vector<std::pair<std::int64_t, double>>> metrics;
  std::map<std::string, std::string> infos;
  std::map<std::string, std::string> samples;  // "prompt|who|mode" -> text
  void metric(const std::string& name, double value, std::int64_t step) override {
    const attnlab::metrics::Metric* declared = attnlab::metrics::find(name);
    if (!declared) throw std::logic_error("metric '" + name + "' has no declaration in core/src/base/metrics.cpp");
    if (declared->has(attnlab::metrics::kCurve) != (step >= 0))
      throw std::logic_error("metric '" + name + "' emitted at step " + std::to_string(step) + ", declared " +
                             (declared->has(attnlab::metrics::kCurve) ? "per step" : "final"));
    metrics[name].emplace_back(step, value);
  }
  void sample(const std::string& prompt, const std::string& who, const std::string& mode, const std::string& text) override {
    samples[prompt + "|" + who + "|" + mode] = text;
  }
  void info(const std::string& key, const std::string& value) override { infos[key] = value; }
  double final(const std::string& name) const {
    INFO("metric " << name);
    REQUIRE(metrics.count(name) == 1);
    return metrics.at(name).back().second;
  }
  std::vector<double> curve(const std::string& name) const {
    std::vector<double> v;
    if (metrics.count(name))
      for (const auto& p : metrics.at(name)) v.push_back(p.second);
    return v;
  }
};

}  // namespace attnlab::test
