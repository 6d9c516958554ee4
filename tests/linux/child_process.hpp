#pragma once
// Test-only: a program (usually the flowrelay binary) run as a child process with a deadline, so a
// child that hangs fails its test instead of hanging it. Optionally inside a network namespace,
// and with a cap on its data memory, so a child that reads without bound fails fast instead of
// taking the machine's memory.

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace flowrelay::linux_host::testing {

class ChildProcess {
 public:
  struct Options {
    int netns_fd = -1;            // setns() into it before exec
    rlim_t data_limit = 0;        // RLIMIT_DATA; 0 = unchanged (always unchanged under sanitizers)
  };

  /// Starts `args` (args[0] is the program's path) with stdout and stderr appended to `log`.
  ChildProcess(std::vector<std::string> args, std::string log, Options o) : log_(std::move(log)) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int log_fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    o.data_limit = 0;  // sanitizers map terabytes of shadow memory: any cap would break the child
#endif
    pid_ = ::fork();
    if (pid_ == 0) {
      if (o.netns_fd >= 0 && ::setns(o.netns_fd, CLONE_NEWNET) != 0) ::_exit(120);
      if (o.data_limit > 0) {
        rlimit r{o.data_limit, o.data_limit};
        if (::setrlimit(RLIMIT_DATA, &r) != 0) ::_exit(122);
      }
      ::dup2(log_fd, 1);
      ::dup2(log_fd, 2);
      ::execv(argv[0], argv.data());
      ::_exit(121);
    }
    ::close(log_fd);
    pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
  }
  ChildProcess(std::vector<std::string> args, std::string log) : ChildProcess(std::move(args), std::move(log), Options{}) {}
  ~ChildProcess() {
    kill9();
    if (pidfd_ >= 0) ::close(pidfd_);
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  /// The exit status (128 + signal when killed) once the child has ended, waiting up to `ms`;
  /// nullopt if it is still running then.
  std::optional<int> wait_exit(int ms) {
    if (pid_ <= 0) return status();
    pollfd p{pidfd_, POLLIN, 0};
    if (pidfd_ < 0 || ::poll(&p, 1, ms) != 1) return std::nullopt;
    reap();
    return status();
  }
  /// SIGTERM, then wait_exit(ms).
  std::optional<int> terminate(int ms = 10000) {
    if (pid_ > 0) ::kill(pid_, SIGTERM);
    return wait_exit(ms);
  }
  void kill9() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    reap();
  }
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  std::string output() const {
    std::ifstream in(log_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  void reap() {
    int st = 0;
    if (::waitpid(pid_, &st, 0) == pid_) status_ = st;
    pid_ = -1;
  }
  int status() const { return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_); }

  std::string log_;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  int status_ = 0;
};

}  // namespace flowrelay::linux_host::testing
