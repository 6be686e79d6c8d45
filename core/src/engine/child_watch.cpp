// The loop that watches a trial's process while it runs (process.hpp: watch_child), shared by
// the exec path (run_child) and the fork server (fork_server.hpp).
#include "engine/process.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

namespace attnlab::engine {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The child's output: the last bytes for the error message, and a copy to our stderr if asked.
class OutputTail {
 public:
  explicit OutputTail(const ChildOptions& options) : options_(options) {}
  void keep(const char* data, std::size_t n) {
    tail_.append(data, n);
    if (tail_.size() > 2 * options_.tail_bytes) tail_.erase(0, tail_.size() - options_.tail_bytes);
    if (options_.forward_stderr) {
      ssize_t ignored = ::write(STDERR_FILENO, data, n);
      (void)ignored;
    }
  }
  // False at end of file (or on an error other than an interruption): the pipe is closed.
  bool read_some(int fd) {
    char buffer[4096];
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n > 0) keep(buffer, static_cast<std::size_t>(n));
    return n > 0 || (n < 0 && (errno == EINTR || errno == EAGAIN));
  }
  std::string take() {
    if (tail_.size() > options_.tail_bytes) tail_.erase(0, tail_.size() - options_.tail_bytes);
    return std::move(tail_);
  }

 private:
  const ChildOptions& options_;
  std::string tail_;
};

// Waits up to 200 ms for output or for the child's end; reads what came. Returns whether the
// output pipe is still open.
bool wait_a_little(const WatchedChild& child, bool pipe_open, OutputTail& output) {
  pollfd fds[2];
  nfds_t n = 0;
  if (pipe_open) fds[n++] = {child.out_fd, POLLIN, 0};
  if (child.exit_fd >= 0) fds[n++] = {child.exit_fd, POLLIN, 0};
  // Without a way to see its end, poll its status every 100 ms once its output is closed.
  const int timeout_ms = pipe_open || child.exit_fd >= 0 ? 200 : 100;
  if (::poll(n ? fds : nullptr, n, timeout_ms) > 0 && pipe_open && fds[0].revents != 0)
    return output.read_some(child.out_fd);
  return pipe_open;
}

}  // namespace

ChildResult watch_child(const WatchedChild& child, const ChildOptions& options,
                        const std::function<bool()>& heartbeat) {
  ChildResult result;
  OutputTail output(options);
  auto last_beat = Clock::now();
  bool pipe_open = true, stopping = false;
  Clock::time_point kill_at;
  // SIGTERM to the group, then SIGKILL after a grace period (it may ignore SIGTERM, or hang).
  auto stop = [&]() {
    if (stopping) return;
    stopping = true;
    ::kill(-child.pid, SIGTERM);
    kill_at = Clock::now() + std::chrono::seconds(5);
  };

  int status = 0;
  for (;;) {
    pipe_open = wait_a_little(child, pipe_open, output);
    if (child.ended(status)) break;
    if (stopping) {
      if (Clock::now() > kill_at) ::kill(-child.pid, SIGKILL);
      continue;
    }
    if (options.stop && *options.stop) {
      result.stopped = true;
      stop();
      continue;
    }
    if (options.timeout_s > 0 && seconds_since(child.started) > options.timeout_s) {
      result.timed_out = true;
      stop();
      continue;
    }
    if (seconds_since(last_beat) >= options.heartbeat_s) {
      last_beat = Clock::now();
      if (!heartbeat()) {
        result.claim_lost = true;
        stop();
      }
    }
  }
  // The rest of its output (and of anything it left running in its group: kill that too).
  ::kill(-child.pid, SIGKILL);
  while (pipe_open) {
    pollfd p{child.out_fd, POLLIN, 0};
    pipe_open = ::poll(&p, 1, 0) > 0 && output.read_some(child.out_fd);
  }
  ::close(child.out_fd);
  result.seconds = seconds_since(child.started);
  if (WIFEXITED(status)) {
    result.exited = true;
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  }
  result.stderr_tail = output.take();
  return result;
}

}  // namespace attnlab::engine
