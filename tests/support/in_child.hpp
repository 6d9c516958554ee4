#pragma once
// Test-only: runs a piece of the test in a forked child with a deadline and a memory cap, for code
// that may hang (open() on a FIFO) or read without end (/dev/zero) when it is wrong. A wrong
// implementation then fails its test (nullopt) instead of hanging it or eating the machine.
// Call it from a single-threaded test process: the child runs `fn` as is.

#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <exception>
#include <functional>
#include <optional>
#include <string>

namespace flowrelay::test {

/// What `fn` returned in the child ("threw: ..." if it threw); nullopt when the child did not finish within `ms` (it is
/// killed then) or ended without answering (e.g. out of memory under the cap).
inline std::optional<std::string> in_child_within(int ms, const std::function<std::string()>& fn,
                                                  rlim_t data_limit = rlim_t{1} << 30) {
  int p[2];
  if (::pipe(p) != 0) return std::nullopt;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(p[0]);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)  // their shadow maps exceed any cap
    rlimit r{data_limit, data_limit};
    ::setrlimit(RLIMIT_DATA, &r);
#else
    (void)data_limit;
#endif
    std::string out = "=";  // marks an answer, even an empty one
    try {
      out += fn();
    } catch (const std::exception& e) {  // never unwind into the test framework's copy in the child
      out += std::string("threw: ") + e.what();
    } catch (...) {
      out += "threw";
    }
    std::size_t off = 0;
    while (off < out.size()) {
      const ssize_t n = ::write(p[1], out.data() + off, out.size() - off);
      if (n <= 0) break;
      off += static_cast<std::size_t>(n);
    }
    ::_exit(0);
  }
  ::close(p[1]);
  std::string got;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  bool eof = false;
  while (!eof) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd pf{p[0], POLLIN, 0};
    if (left.count() <= 0 || ::poll(&pf, 1, static_cast<int>(left.count())) != 1) break;
    char buf[65536];
    const ssize_t n = ::read(p[0], buf, sizeof buf);
    if (n <= 0) eof = true;
    else got.append(buf, static_cast<std::size_t>(n));
  }
  ::close(p[0]);
  if (!eof) ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  if (!eof || got.empty()) return std::nullopt;
  return got.substr(1);
}

}  // namespace flowrelay::test
