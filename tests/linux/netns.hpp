#pragma once
// Test-only helpers: private network namespaces for the calling thread, so nothing a test does to
// nftables, routes, rules or conntrack can reach the host's own namespace.

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>

namespace flowrelay::linux_host::testing {

inline int open_current_netns() { return ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC); }

/// A fresh, anonymous network namespace. Created from (and returning to) the namespace the
/// thread was in; it lives as long as this object (its fd) or any socket made inside it.
/// `enter()` switches the calling thread into it until the returned guard goes away.
class Netns {
 public:
  /// nullopt with `why` set when the process may not create namespaces (not root, seccomp, ...).
  static std::optional<Netns> create(std::string& why) {
    int home = open_current_netns();
    if (home < 0) { why = std::string("open own netns: ") + std::strerror(errno); return std::nullopt; }
    if (::unshare(CLONE_NEWNET) != 0) {
      why = std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno) + " (needs root / CAP_SYS_ADMIN)";
      ::close(home);
      return std::nullopt;
    }
    int self = open_current_netns();
    bring_up("lo");
    if (::setns(home, CLONE_NEWNET) != 0) std::abort();  // cannot go home: never run on in a test netns
    ::close(home);
    return Netns(self);
  }

  Netns(Netns&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Netns(const Netns&) = delete;
  ~Netns() { if (fd_ >= 0) ::close(fd_); }
  int fd() const { return fd_; }
  /// "/proc/<pid>/fd/<n>": a path `ip ... netns PATH` accepts.
  std::string path() const { return "/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(fd_); }

  class Scope {
   public:
    explicit Scope(int target) : home_(open_current_netns()) {
      if (home_ < 0 || ::setns(target, CLONE_NEWNET) != 0) throw std::runtime_error("setns into test netns");
    }
    ~Scope() { if (::setns(home_, CLONE_NEWNET) != 0) std::abort(); ::close(home_); }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;
   private:
    int home_;
  };
  [[nodiscard]] Scope enter() const { return Scope(fd_); }

  /// Interface up, in the calling thread's namespace.
  static void bring_up(const char* ifname) {
    int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    if (::ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
      ifr.ifr_flags |= IFF_UP;
      ::ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    ::close(s);
  }

 private:
  explicit Netns(int fd) : fd_(fd) {}
  int fd_;
};

/// Runs a shell command (test set-up only: `ip`, `nft list`) in the calling thread's namespace.
/// Returns its exit status and stdout.
inline std::pair<int, std::string> sh(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(("{\n" + cmd + "\n} 2>&1").c_str(), "r");
  if (p == nullptr) return {-1, out};
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = ::pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

}  // namespace flowrelay::linux_host::testing

/// Skips the current test (with the reason printed) when namespaces are unavailable.
#define FLOWRELAY_NETNS_OR_SKIP(var)                                   \
  std::string var##_why;                                               \
  auto var##_opt = ::flowrelay::linux_host::testing::Netns::create(var##_why); \
  if (!var##_opt) GTEST_SKIP() << "needs a private network namespace: " << var##_why; \
  auto& var = *var##_opt
