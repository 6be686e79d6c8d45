// The fork server (fork_server.hpp): the server process, its trial children, and the
// worker's side of the socket between them.
#include "engine/fork_server.hpp"

#include "engine/trial_job.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <stdexcept>
#include <vector>

namespace attnlab::engine {
namespace {

// Worker <-> server messages besides the request (the job's two paths, with the output pipe).
enum MessageKind : int { kStarted = 1, kEnded = 2, kForkFailed = 3, kReap = 4 };
struct Message {
  int kind = 0;
  int value = 0;  // kStarted: pid; kEnded: wait status; kForkFailed: errno
};

bool send_message(int socket, Message m) { return ::send(socket, &m, sizeof m, MSG_NOSIGNAL) == sizeof m; }

// Blocking; false at end of file (the other side is gone).
bool receive_message(int socket, Message& m) {
  ssize_t n;
  do n = ::recv(socket, &m, sizeof m, 0);
  while (n < 0 && errno == EINTR);
  return n == sizeof m;
}

// One datagram with one file descriptor attached (SCM_RIGHTS).
bool send_with_fd(int socket, const std::string& data, int fd) {
  iovec iov{const_cast<char*>(data.data()), data.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  return ::sendmsg(socket, &msg, MSG_NOSIGNAL) == static_cast<ssize_t>(data.size());
}

// Bytes received (0 at end of file); `fd` is the attached descriptor or -1.
ssize_t receive_with_fd(int socket, std::vector<char>& buffer, int& fd) {
  iovec iov{buffer.data(), buffer.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do n = ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  fd = -1;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return n;
}

// What exec would have done to the descriptor table: close those marked close-on-exec (the
// runner's database, its pipes), so the trial holds only what an exec'd child would.
void close_cloexec_descriptors(int keep) {
  std::vector<int> open_fds;
  if (DIR* dir = ::opendir("/proc/self/fd")) {
    while (const dirent* entry = ::readdir(dir)) open_fds.push_back(std::atoi(entry->d_name));
    const int own = ::dirfd(dir);
    ::closedir(dir);
    for (int fd : open_fds)
      if (fd > STDERR_FILENO && fd != keep && fd != own && (::fcntl(fd, F_GETFD) & FD_CLOEXEC)) ::close(fd);
  }
}

// In the freshly forked child: become what `attnlab _trial JOB RESULT` is after exec.
[[noreturn]] void become_trial(pid_t server, int socket, int out_fd, const std::string& job,
                               const std::string& result) {
  ::setpgid(0, 0);  // own group: a timeout kills everything the trial started
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != server) ::_exit(127);  // the server died before prctl took effect
  ::signal(SIGINT, SIG_DFL);  // the server ignores them; the trial, like an exec'd one, does not
  ::signal(SIGTERM, SIG_DFL);
  ::close(socket);
  ::dup2(out_fd, STDERR_FILENO);
  ::dup2(out_fd, STDOUT_FILENO);
  ::close(out_fd);
  int code = 1;
  try {
    code = run_trial_job(job, result, "fork-server");
  } catch (...) {
    std::abort();  // as an uncaught exception ends an exec'd `_trial`
  }
  // No exit(): the runner's static objects were copied into this process; they are not ours
  // to destroy. Flush what the trial printed, as main's return would have.
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  ::_exit(code);
}

// The server waits for its child but leaves it a zombie (WNOWAIT): its pid and process group
// stay reserved until the worker, having killed any leftovers of the group, says kReap.
int wait_keeping_zombie(pid_t child) {
  siginfo_t info{};
  while (::waitid(P_PID, static_cast<id_t>(child), &info, WEXITED | WNOWAIT) != 0 && errno == EINTR) {
  }
  // Back to the status word waitpid would give.
  return info.si_code == CLD_EXITED ? (info.si_status & 0xff) << 8
                                    : (info.si_status & 0x7f) | (info.si_code == CLD_DUMPED ? 0x80 : 0);
}

// One trial, server side: fork, report, wait, report, reap when told. False: the worker is gone.
bool serve_one(int socket, int out_fd, const std::string& job, const std::string& result) {
  const pid_t server = ::getpid();
  const pid_t child = ::fork();
  if (child == 0) become_trial(server, socket, out_fd, job, result);
  ::close(out_fd);
  if (child < 0) return send_message(socket, {kForkFailed, errno});
  ::setpgid(child, child);  // also here: the group exists before the worker learns the pid
  if (!send_message(socket, {kStarted, child})) ::kill(-child, SIGKILL);
  const bool told = send_message(socket, {kEnded, wait_keeping_zombie(child)});
  Message reap;
  const bool worker_there = told && receive_message(socket, reap);
  ::waitpid(child, nullptr, 0);
  return worker_there;
}

[[noreturn]] void serve(pid_t runner, int socket) {
  // Its own process group keeps a terminal's Ctrl-C away, and it ignores SIGINT and SIGTERM
  // sent to everything (scancel, a Slurm time limit): the runner stops trials its way (SIGTERM,
  // grace, SIGKILL, claims given back), then closes the socket, which ends the server. A dead
  // runner ends it through PR_SET_PDEATHSIG.
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != runner) ::_exit(0);
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGTERM, SIG_IGN);
  close_cloexec_descriptors(socket);
  std::vector<char> buffer(64 * 1024);
  for (;;) {
    int out_fd = -1;
    const ssize_t n = receive_with_fd(socket, buffer, out_fd);
    if (n <= 0) ::_exit(0);  // the worker closed its end: the run is over
    const std::string job(buffer.data(), ::strnlen(buffer.data(), static_cast<std::size_t>(n)));
    const std::size_t size = static_cast<std::size_t>(n);
    const std::string result(buffer.data() + std::min(job.size() + 1, size), buffer.data() + size);
    if (out_fd < 0 || !serve_one(socket, out_fd, job, result)) ::_exit(0);
  }
}

}  // namespace

bool fork_server_wanted() {
  const char* value = std::getenv("ATTNLAB_FORK_SERVER");
  if (!value) return true;
  const std::string v = value;
  return !(v == "0" || v == "off" || v == "no" || v == "false");
}

int thread_count() {
  int n = 0;
  if (DIR* dir = ::opendir("/proc/self/task")) {
    while (const dirent* entry = ::readdir(dir))
      if (entry->d_name[0] != '.') ++n;
    ::closedir(dir);
  }
  return n;
}

std::unique_ptr<ForkServer> ForkServer::start(std::string& why_not) {
  const int threads = thread_count();
  if (threads != 1) {
    why_not = "this process already runs " + std::to_string(threads) + " threads; forking it is unsafe";
    return nullptr;
  }
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) {
    why_not = std::string("socketpair: ") + std::strerror(errno);
    return nullptr;
  }
  // Anything still buffered would be written again by every child that flushes.
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  const pid_t runner = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    serve(runner, fds[1]);
  }
  ::close(fds[1]);
  if (pid < 0) {
    why_not = std::string("fork: ") + std::strerror(errno);
    ::close(fds[0]);
    return nullptr;
  }
  return std::unique_ptr<ForkServer>(new ForkServer(pid, fds[0]));
}

ForkServer::~ForkServer() {
  // Idle by now (run_trial waits for its child): nothing of value is lost by killing it.
  ::close(socket_);
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
}

ChildResult ForkServer::run_trial(const std::string& job_path, const std::string& result_path,
                                  const ChildOptions& options, const std::function<bool()>& heartbeat) {
  if (!alive_) throw std::runtime_error("the fork server is gone");
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  const auto start = std::chrono::steady_clock::now();
  const bool sent = send_with_fd(socket_, job_path + '\0' + result_path, pipe_fds[1]);
  ::close(pipe_fds[1]);
  Message started;
  if (!sent || !receive_message(socket_, started) || started.kind != kStarted) {
    ::close(pipe_fds[0]);
    if (started.kind == kForkFailed) throw std::runtime_error(std::string("fork: ") + std::strerror(started.value));
    alive_ = false;
    throw std::runtime_error("the fork server is gone");
  }
  bool server_lost = false;
  auto ended = [&](int& status) {
    Message m;
    const ssize_t n = ::recv(socket_, &m, sizeof m, MSG_DONTWAIT);
    if (n == sizeof m && m.kind == kEnded) {
      status = m.value;
      return true;
    }
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      server_lost = true;  // its death killed the child too (PR_SET_PDEATHSIG)
      status = SIGKILL;
      return true;
    }
    return false;
  };
  const ChildResult result = watch_child({started.value, pipe_fds[0], socket_, start, ended}, options, heartbeat);
  if (server_lost || !send_message(socket_, {kReap, started.value})) alive_ = false;
  return result;
}

}  // namespace attnlab::engine
