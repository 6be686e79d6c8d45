// fault: a test backend that misbehaves on purpose, for the engine's fault tests
// (tests/test_engine.cpp). As attention it is uniform causal averaging:
//
//   out[b,h,t] = (1 / (t + 1)) * sum_{s<=t} v[b,h,s]
//   q [B, H, T, D], k [B, H, S, D], v [B, H, S, D] -> out [B, H, T, D]   (S == T)
//
// What it does when built (parameter "fault"): none | segfault | abort | hang | sigkill (what
// the kernel's out-of-memory killer sends) | throw | exit | crash_once (crashes unless the file
// $ATTNLAB_FAULT_LOG.once-<tag> exists, which it creates: a transient failure). "sleep_ms"
// makes each forward take that long; "nan_after" = N makes every forward after the first N
// return NaN (a diverging trial, for the divergence guard). $ATTNLAB_FAULT_EXTRA_SLEEP_MS
// adds that much to every forward: a slowdown outside the trial's key, for before/after tests. When $ATTNLAB_FAULT_LOG is set, every construction
// appends "start <tag> <pid> <seconds>" and every destruction "end <tag> <pid> <seconds>" to
// it (O_APPEND: whole lines, whatever the number of writers), so a test counts executions,
// not database rows.
#include <attnlab/plugin.hpp>

#include <ATen/ATen.h>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>

namespace {

void log_line(const std::string& what, const std::string& tag) {
  const char* path = std::getenv("ATTNLAB_FAULT_LOG");
  if (!path) return;
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  const std::string line = what + " " + tag + " " + std::to_string(::getpid()) + " " + std::to_string(now) + "\n";
  const int fd = ::open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
  if (fd < 0) return;
  ssize_t ignored = ::write(fd, line.data(), line.size());
  (void)ignored;
  ::close(fd);
}

class FaultBackend : public attnlab::AttentionBackend {
 public:
  explicit FaultBackend(const attnlab::BackendInit& init)
      : AttentionBackend("FaultBackend"),
        tag_(init.params.get_string("tag")),
        sleep_ms_(init.params.get_int("sleep_ms")),
        nan_after_(init.params.get_int("nan_after")) {
    log_line("start", tag_);
    const std::string fault = init.params.get_string("fault");
    if (fault == "segfault") ::raise(SIGSEGV);
    if (fault == "abort") std::abort();
    if (fault == "sigkill") ::raise(SIGKILL);
    if (fault == "exit") std::exit(7);
    if (fault == "throw") throw std::runtime_error("fault backend: asked to throw");
    if (fault == "hang")
      for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
    if (fault == "crash_once") {
      const std::string marker = std::string(std::getenv("ATTNLAB_FAULT_LOG") ? std::getenv("ATTNLAB_FAULT_LOG") : "/tmp/fault") +
                                 ".once-" + tag_;
      if (::access(marker.c_str(), F_OK) != 0) {
        ::close(::open(marker.c_str(), O_WRONLY | O_CREAT, 0644));
        ::raise(SIGSEGV);
      }
    }
  }
  ~FaultBackend() override { log_line("end", tag_); }

  static std::vector<attnlab::ParamSpec> schema() {
    using attnlab::ParamSpec;
    return {ParamSpec::choice("fault", "none",
                              {"none", "segfault", "abort", "hang", "sigkill", "throw", "exit", "crash_once"},
                              "how the backend misbehaves when built"),
            ParamSpec::text("tag", "", "names the trial in $ATTNLAB_FAULT_LOG"),
            ParamSpec::integer("sleep_ms", 0, 0, 600000, "each forward sleeps this long"),
            ParamSpec::integer("nan_after", -1, -1, 1000000, "forwards after this many return NaN (-1: never)")};
  }

  torch::Tensor forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) override {
    if (sleep_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms_));
    if (const char* extra = std::getenv("ATTNLAB_FAULT_EXTRA_SLEEP_MS"))
      std::this_thread::sleep_for(std::chrono::milliseconds(std::atoll(extra)));
    const auto T = v.size(2);
    const auto out = v.cumsum(2) / at::arange(1, T + 1, v.options()).view({1, 1, T, 1});
    if (nan_after_ >= 0 && calls_++ >= nan_after_) return out * std::numeric_limits<float>::quiet_NaN();
    return out;
  }

 private:
  std::string tag_;
  std::int64_t sleep_ms_;
  std::int64_t nan_after_;
  std::int64_t calls_ = 0;
};

}  // namespace

ATTNLAB_PLUGIN(FaultBackend, "fault", "1.0.0", "test backend that crashes, hangs or throws on purpose")
