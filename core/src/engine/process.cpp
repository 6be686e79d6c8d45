#include "engine/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace attnlab::engine {
namespace {

using Clock = std::chrono::steady_clock;

std::string hostname() {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  return host;
}

// Field 22 of /proc/<pid>/stat (start time, clock ticks after boot); "" when there is none.
std::string start_time(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return "";
  // The command name (field 2) is in parentheses and may hold spaces: count after the last ')'.
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return "";
  std::istringstream rest(stat.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22 && rest >> field; ++i)
    if (i == 22) return field;
  return "";
}

}  // namespace

std::string worker_id() {
  const std::string pid = std::to_string(::getpid());
  return hostname() + ":" + pid + ":" + start_time(pid);
}

bool owner_alive(const std::string& claimed_by) {
  // A worker thread's id is its process's with "/<worker index>" after it.
  const std::string owner = claimed_by.substr(0, claimed_by.find('/'));
  const auto last = owner.rfind(':');
  const auto middle = last == std::string::npos ? std::string::npos : owner.rfind(':', last - 1);
  if (middle == std::string::npos) return true;  // not one of ours: let the lease decide
  const std::string host = owner.substr(0, middle), pid = owner.substr(middle + 1, last - middle - 1),
                    start = owner.substr(last + 1);
  if (host != hostname()) return true;
  const std::string now = start_time(pid);
  return !now.empty() && now == start;
}

std::string self_executable() {
  char path[4096];
  const ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0) throw std::runtime_error("cannot read /proc/self/exe");
  path[n] = '\0';
  return path;
}

std::string ChildResult::describe() const {
  std::ostringstream out;
  if (stopped) out << "stopped: the worker was asked to stop";
  else if (claim_lost) out << "stopped: its claim was taken over (the lease expired)";
  else if (timed_out) out << "timed out after " << seconds << " s (trial_timeout_s)";
  else if (exited) out << "exit code " << exit_code;
  else {
    out << "killed by signal " << signal << " (" << ::strsignal(signal) << ")";
    if (signal == SIGKILL) out << "; SIGKILL from outside is often the kernel's out-of-memory killer";
  }
  return out.str();
}

ChildResult run_child(const std::vector<std::string>& argv, const ChildOptions& options,
                      const std::function<bool()>& heartbeat) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = ::getpid();

  const auto start = Clock::now();
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec. Own process group (so a timeout kills
    // everything it started), killed with its parent, stderr into the pipe.
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the parent died before prctl took effect
    ::dup2(pipe_fds[1], STDERR_FILENO);
    ::dup2(pipe_fds[1], STDOUT_FILENO);  // the parent's stdout carries only its own results
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also here: whichever runs first, the group exists before any kill
  ::close(pipe_fds[1]);
  // A pidfd turns readable when the child ends, so its end is seen at once rather than at
  // the next 100 ms poll (kernels before 5.3 have none: then it is polled).
#ifdef SYS_pidfd_open
  const int exit_fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
  const int exit_fd = -1;
#endif
  WatchedChild child{pid, pipe_fds[0], exit_fd, start,
                     [pid](int& status) { return ::waitpid(pid, &status, WNOHANG) == pid; }};
  ChildResult result = watch_child(child, options, heartbeat);
  if (exit_fd >= 0) ::close(exit_fd);
  return result;
}

}  // namespace attnlab::engine
