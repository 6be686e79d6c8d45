#pragma once
// Child processes for trials, and who holds a claim.
//
// A worker runs each trial in a child (engine/fork_server.hpp forks it; exec of this binary
// with ATTNLAB_FORK_SERVER=0): a segfault, an abort, an out-of-memory kill or a hang fails that
// trial alone. The parent watches the child's stderr (keeping its tail for the error message),
// heartbeats the claim while it runs, and kills the child's process group on a timeout or a
// lost claim. The child dies with its parent too (PR_SET_PDEATHSIG), so a kill -9 of `attnlab
// run` leaves no orphan computing a trial that someone else will claim again.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace attnlab::engine {

// "host:pid:start" of this process; start is the process start time in clock ticks since
// boot (/proc/self/stat), so a recycled pid is not mistaken for the old owner.
std::string worker_id();
// False only when `owner` is a process of this host that no longer exists (or whose pid now
// belongs to another process); an owner on another host is presumed alive until its lease
// expires.
bool owner_alive(const std::string& owner);

struct ChildOptions {
  double timeout_s = 0;         // 0: none
  double heartbeat_s = 10;      // how often `heartbeat` is called while the child runs
  bool forward_stderr = false;  // also copy the child's stderr to ours as it comes
  std::size_t tail_bytes = 4000;
  const std::atomic<bool>* stop = nullptr;  // set: stop the child (the worker is stopping)
};

struct ChildResult {
  bool exited = false;   // exited normally (then exit_code), else killed by `signal`
  int exit_code = -1;
  int signal = 0;
  bool timed_out = false;
  bool claim_lost = false;  // heartbeat() said the claim was gone: the child was killed
  bool stopped = false;     // options.stop was set: the child was killed
  double seconds = 0;
  std::string stderr_tail;  // last tail_bytes of its stderr
  // "exit code 3", "killed by signal 11 (Segmentation fault)", "timed out after 5 s", ...
  std::string describe() const;
};

// Runs argv[0] with argv, waits for it. `heartbeat` returns false when the claim is lost.
ChildResult run_child(const std::vector<std::string>& argv, const ChildOptions& options,
                      const std::function<bool()>& heartbeat);

// A started child as the watch loop sees it, whoever forked it (run_child here, or the fork
// server of engine/fork_server.hpp): the leader of its own process group, the read end of the
// pipe that carries its stdout and stderr, and how to learn that it ended.
struct WatchedChild {
  int pid = -1;
  int out_fd = -1;
  int exit_fd = -1;  // readable once it may have ended, so an exit is seen at once (-1: none)
  std::chrono::steady_clock::time_point started;
  // Non-blocking: true, with its wait status (as waitpid gives it), once it has ended.
  std::function<bool(int& status)> ended;
};

// Reads its output (keeping the tail), heartbeats, stops its process group on a timeout, a
// lost claim or options.stop (SIGTERM, SIGKILL 5 s later), and returns how it ended. On return
// whatever was left in its group is killed and out_fd is closed.
ChildResult watch_child(const WatchedChild& child, const ChildOptions& options,
                        const std::function<bool()>& heartbeat);

// Path of the running executable (/proc/self/exe).
std::string self_executable();

}  // namespace attnlab::engine
