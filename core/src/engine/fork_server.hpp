#pragma once
// A fork server for trial children: LibTorch loaded once, a fresh process per trial.
//
// Exec'ing `attnlab _trial` per trial costs ~0.6 s of dynamic loading and static
// initialisation (LibTorch) before the trial starts. Instead, `attnlab run` forks one server
// per worker while it still has a single thread and has started no thread pool (no tensor
// op, no OpenMP team: the sgemm ceiling is measured after). The server stays single-threaded;
// for each trial it forks a child that runs exactly what `_trial` runs (run_trial_job), in
// its own process group, its stdout and stderr on a pipe the worker passed over the socket
// (SCM_RIGHTS). Forking a single-threaded process is safe; the child starts its own OpenMP
// team on its first parallel op, as an exec'd child would.
//
// The worker cannot waitpid a grandchild, so the server relays: it sends the child's pid
// (its process group exists by then), waits for the child with WNOWAIT, sends the wait status
// and reaps the zombie only when the worker acknowledges. Until then the pid and process
// group cannot be reused, so the worker's final kill(-pid, SIGKILL) of leftovers never hits
// a stranger. Death: the server has PR_SET_PDEATHSIG(SIGKILL) on the runner's main thread,
// each child on the server, so a kill -9 of `attnlab run` takes both down; the server also
// exits when the worker closes its socket. Timeouts, claim loss and stop kill the child's
// process group as on the exec path (engine/process.hpp, watch_child).
//
// ATTNLAB_FORK_SERVER=0 turns this off: each trial is exec'd as before (engine::run_child).
#include "engine/process.hpp"

#include <functional>
#include <memory>
#include <string>

namespace attnlab::engine {

// False when ATTNLAB_FORK_SERVER is "0" (or "off", "no", "false").
bool fork_server_wanted();

// Threads of this process now (/proc/self/task): fork is safe for the server only at 1.
int thread_count();

class ForkServer {
 public:
  // Forks the server. Null, with the reason in `why_not`, when this process has more than
  // one thread (a fork would copy locks held by the others) or fork fails.
  static std::unique_ptr<ForkServer> start(std::string& why_not);
  ~ForkServer();  // closes the socket (the server exits) and reaps it
  ForkServer(const ForkServer&) = delete;
  ForkServer& operator=(const ForkServer&) = delete;

  // One trial: `attnlab _trial JOB RESULT` as a forked child, watched like run_child's.
  // Throws std::runtime_error when the server is gone before the trial started.
  ChildResult run_trial(const std::string& job_path, const std::string& result_path, const ChildOptions& options,
                        const std::function<bool()>& heartbeat);
  // False once the server died (then the worker goes back to exec).
  bool alive() const { return alive_; }
  int pid() const { return pid_; }

 private:
  ForkServer(int pid, int socket) : pid_(pid), socket_(socket) {}
  int pid_;
  int socket_;
  bool alive_ = true;
};

}  // namespace attnlab::engine
