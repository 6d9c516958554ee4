#pragma once
// Test-only: an unprivileged local user trying to share one of the relay's UDP addresses (or a
// TCP listener's, to check that the kernel refuses that whatever the options).
//
// A forked child of the calling thread (so inside whatever network namespace that thread has
// entered) drops to nobody (65534), then binds a UDP socket to the address with SO_REUSEADDR,
// SO_REUSEPORT or both, and optionally IP_FREEBIND (an unprivileged way to bind an address that is
// not local, such as a claimed flow's original destination) and a connect() to a peer (to look
// like the relay's connected reply socket). If the bind succeeds it counts every datagram that
// reaches it until the parent asks for the count.
//
// The child makes only plain system calls (no allocation, no locks): the parent may have threads.

#include "tests/linux/sockets.hpp"

#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <optional>
#include <string>

namespace flowrelay::linux_host::testing {

inline constexpr uid_t kNobody = 65534;

enum class Reuse { address, port, both };

inline const char* to_string(Reuse r) {
  switch (r) {
    case Reuse::address: return "SO_REUSEADDR";
    case Reuse::port: return "SO_REUSEPORT";
    case Reuse::both: return "SO_REUSEADDR+SO_REUSEPORT";
  }
  return "?";
}

struct CoBind {
  std::string ip;
  std::uint16_t port = 0;
  Reuse reuse = Reuse::address;
  bool freebind = false;                                        // IP_FREEBIND / IPV6_FREEBIND
  std::optional<std::pair<std::string, std::uint16_t>> peer{};  // connect() after binding (best effort)
  bool tcp = false;                                             // a TCP listener instead (bind + listen)
};

class CoBinder {
 public:
  /// Forks and waits (up to 5 s) for the child's bind result.
  explicit CoBinder(const CoBind& spec) {
    int result[2], stop[2];
    if (::pipe2(result, O_CLOEXEC) != 0 || ::pipe2(stop, O_CLOEXEC) != 0) return;
    const SockAddr a = make_addr(spec.ip, spec.port);
    const std::optional<SockAddr> peer = spec.peer ? std::optional(make_addr(spec.peer->first, spec.peer->second))
                                                   : std::nullopt;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(result[0]);
      ::close(stop[1]);
      child(spec, a, peer, result[1], stop[0]);
    }
    ::close(result[1]);
    ::close(stop[0]);
    result_ = result[0];
    stop_ = stop[1];
    if (wait_readable(result_, 5000)) {
      int err = -1;
      if (::read(result_, &err, sizeof err) == sizeof err) bind_errno_ = err;
    }
  }
  ~CoBinder() {
    if (stop_ >= 0) ::close(stop_);
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (result_ >= 0) ::close(result_);
  }
  CoBinder(const CoBinder&) = delete;
  CoBinder& operator=(const CoBinder&) = delete;

  /// 0 when the bind succeeded; its errno otherwise; -1 if the child never said.
  int bind_errno() const { return bind_errno_; }
  bool bound() const { return bind_errno_ == 0; }

  /// Stops the child; the datagrams its socket received (0 if it never bound, -1 if it did not say).
  int received() {
    if (stop_ >= 0) {
      ::close(stop_);
      stop_ = -1;
    }
    int n = -1;
    if (wait_readable(result_, 5000) && ::read(result_, &n, sizeof n) != sizeof n) n = -1;
    return n;
  }

 private:
  [[noreturn]] static void child(const CoBind& spec, const SockAddr& a, const std::optional<SockAddr>& peer, int out,
                                 int stop) {
    auto report = [out](int v) { (void)!::write(out, &v, sizeof v); };
    if (::setgroups(0, nullptr) != 0 || ::setgid(kNobody) != 0 || ::setuid(kNobody) != 0) {
      report(EPERM);
      ::_exit(1);
    }
    const int fd = ::socket(a.family(), (spec.tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
    const int one = 1;
    bool ok = fd >= 0;
    if (ok && spec.reuse != Reuse::port) ok = ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0;
    if (ok && spec.reuse != Reuse::address) ok = ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == 0;
    if (ok && spec.freebind)
      ok = a.family() == AF_INET ? ::setsockopt(fd, SOL_IP, IP_FREEBIND, &one, sizeof one) == 0
                                 : ::setsockopt(fd, SOL_IPV6, IPV6_FREEBIND, &one, sizeof one) == 0;
    if (ok && a.family() == AF_INET6) ok = ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) == 0;
    if (ok) ok = ::bind(fd, a.sa(), a.len) == 0;
    if (ok && spec.tcp) ok = ::listen(fd, 16) == 0;
    report(ok ? 0 : errno);
    // Best effort: IPv4 refuses a route from a non-local source without IP_TRANSPARENT (ENETUNREACH),
    // IPv6 allows it. Unconnected, the socket still gets whatever the kernel hands it.
    if (ok && peer) (void)::connect(fd, peer->sa(), peer->len);
    int received = 0;
    if (ok && !spec.tcp) {
      pollfd p[2] = {{fd, POLLIN, 0}, {stop, POLLIN, 0}};
      while (::poll(p, 2, -1) > 0 && (p[1].revents & (POLLIN | POLLHUP)) == 0) {
        char buf[2048];
        if (::recv(fd, buf, sizeof buf, MSG_DONTWAIT) >= 0) ++received;
      }
      // What is still queued arrived before the parent asked.
      char buf[2048];
      while (::recv(fd, buf, sizeof buf, MSG_DONTWAIT) >= 0) ++received;
    } else {
      pollfd p{stop, POLLIN, 0};
      ::poll(&p, 1, -1);
    }
    report(received);
    ::_exit(0);
  }

  pid_t pid_ = -1;
  int result_ = -1;
  int stop_ = -1;
  int bind_errno_ = -1;
};

}  // namespace flowrelay::linux_host::testing
