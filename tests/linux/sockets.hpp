#pragma once
// Test-only socket helpers: blocking loopback sockets with a poll deadline instead of sleeps.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>

namespace flowrelay::linux_host::testing {

struct SockAddr {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family() const { return ss.ss_family; }
  std::uint16_t port() const {
    return ntohs(ss.ss_family == AF_INET ? reinterpret_cast<const sockaddr_in&>(ss).sin_port
                                         : reinterpret_cast<const sockaddr_in6&>(ss).sin6_port);
  }
  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&ss); }
};

inline SockAddr make_addr(const std::string& ip, std::uint16_t port) {
  SockAddr a;
  if (ip.find(':') == std::string::npos) {
    auto& in = reinterpret_cast<sockaddr_in&>(a.ss);
    in.sin_family = AF_INET;
    in.sin_port = htons(port);
    ::inet_pton(AF_INET, ip.c_str(), &in.sin_addr);
    a.len = sizeof(sockaddr_in);
  } else {
    auto& in6 = reinterpret_cast<sockaddr_in6&>(a.ss);
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(port);
    ::inet_pton(AF_INET6, ip.c_str(), &in6.sin6_addr);
    a.len = sizeof(sockaddr_in6);
  }
  return a;
}

inline SockAddr local_addr(int fd) {
  SockAddr a;
  a.len = sizeof a.ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a.ss), &a.len);
  return a;
}

/// True when fd becomes readable within `ms`.
inline bool wait_readable(int fd, int ms = 5000) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, ms) == 1;
}

inline int tcp_listener(const std::string& ip, std::uint16_t port = 0) {
  auto a = make_addr(ip, port);
  int fd = ::socket(a.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, a.sa(), a.len) != 0 || ::listen(fd, 64) != 0) { ::close(fd); return -1; }
  return fd;
}

inline int tcp_connect(const std::string& ip, std::uint16_t port) {
  auto a = make_addr(ip, port);
  int fd = ::socket(a.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (::connect(fd, a.sa(), a.len) != 0) {
    int e = errno;
    ::close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

/// Accept with a deadline; -1 on timeout.
inline int accept_within(int listener, int ms = 5000) {
  if (!wait_readable(listener, ms)) return -1;
  return ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
}

inline int udp_socket(const std::string& bind_ip, std::uint16_t port = 0) {
  auto a = make_addr(bind_ip, port);
  int fd = ::socket(a.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (::bind(fd, a.sa(), a.len) != 0) { ::close(fd); return -1; }
  return fd;
}

/// Sends all of `s`; true on success.
inline bool send_all(int fd, const std::string& s) {
  return ::send(fd, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size());
}

/// Receives exactly `n` bytes (or fewer on EOF/error/timeout).
inline std::string recv_n(int fd, std::size_t n, int ms = 5000) {
  std::string out;
  char buf[4096];
  while (out.size() < n && wait_readable(fd, ms)) {
    ssize_t r = ::recv(fd, buf, std::min(sizeof buf, n - out.size()), 0);
    if (r <= 0) break;
    out.append(buf, static_cast<std::size_t>(r));
  }
  return out;
}

}  // namespace flowrelay::linux_host::testing
