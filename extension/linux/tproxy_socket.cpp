#include "extension/linux/tproxy_socket.hpp"

#include "extension/linux/socket_address.hpp"

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

namespace flowrelay::linux_host {
namespace {

bool set_int(int fd, int level, int name, int value) { return ::setsockopt(fd, level, name, &value, sizeof value) == 0; }

bool is_v4(const relay::Endpoint& e) { return e.address.is_v4(); }

/// Who else may bind a socket's address (DESIGN.md, "Security model": no UDP socket another user
/// can co-bind). With SO_REUSEADDR on both sides Linux lets ANY user bind the same UDP address, and
/// the newest socket wins the lookup; IP_FREEBIND lets any user bind a non-local address. So:
enum class Share {
  // SO_REUSEADDR, for TCP listeners only: Linux never lets a second socket bind a listening TCP
  // port whatever either side sets, and a restart need not wait out TIME_WAIT.
  restart,
  // Nothing: the UDP listener. Nobody else binds 127.0.0.1:P / [::1]:P while it is open.
  exclusive,
  // SO_REUSEPORT: UDP reply sockets, several per original destination (one per app flow). The
  // kernel admits to a reuseport group only sockets of the same effective uid. Connected members
  // are found by their peer, not by the group's hash, so each flow's datagrams reach its own.
  same_user,
};

int share_option(Share s) {
  switch (s) {
    case Share::restart: return SO_REUSEADDR;
    case Share::exclusive: return 0;
    case Share::same_user: return SO_REUSEPORT;
  }
  return 0;
}

/// A socket with the options every transparent socket needs; -1 with errno on failure.
int transparent_socket(const relay::Endpoint& e, int type, Share share) {
  const int family = is_v4(e) ? AF_INET : AF_INET6;
  int fd = ::socket(family, type | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const int option = share_option(share);
  bool ok = (option == 0 || set_int(fd, SOL_SOCKET, option, 1)) &&
            (is_v4(e) ? set_int(fd, SOL_IP, IP_TRANSPARENT, 1) : set_int(fd, SOL_IPV6, IPV6_TRANSPARENT, 1)) &&
            (is_v4(e) || set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1));
  if (ok && type == SOCK_DGRAM)
    ok = is_v4(e) ? set_int(fd, SOL_IP, IP_RECVORIGDSTADDR, 1) : set_int(fd, SOL_IPV6, IPV6_RECVORIGDSTADDR, 1);
  if (!ok) {
    int err = errno;
    ::close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

int bind_to(int fd, const relay::Endpoint& e) {
  sockaddr_storage ss;
  socklen_t len = to_sockaddr(e, ss);
  return ::bind(fd, reinterpret_cast<sockaddr*>(&ss), len);
}

[[noreturn]] void fail(const char* what, const relay::Endpoint& e) {
  throw std::system_error(errno, std::generic_category(), std::string(what) + " " + e.to_string());
}

}  // namespace

UniqueFd open_tproxy_tcp_listener(const relay::Endpoint& local, int backlog) {
  UniqueFd fd(transparent_socket(local, SOCK_STREAM, Share::restart));
  if (!fd) fail("transparent tcp socket", local);
  if (bind_to(fd.get(), local) != 0) fail("bind", local);
  if (::listen(fd.get(), backlog) != 0) fail("listen", local);
  return fd;
}

relay::Endpoint original_destination(int accepted_fd) { return local_endpoint(accepted_fd); }

UniqueFd open_tproxy_udp_socket(const relay::Endpoint& local) {
  UniqueFd fd(transparent_socket(local, SOCK_DGRAM, Share::exclusive));
  if (!fd) fail("transparent udp socket", local);
  if (bind_to(fd.get(), local) != 0) fail("bind", local);
  return fd;
}

std::optional<UdpDatagram> recv_with_original_dst(int fd, std::span<std::byte> buffer,
                                                  boost::system::error_code& ec, int flags) {
  sockaddr_storage src{};
  iovec iov{buffer.data(), buffer.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(sockaddr_in6)) + CMSG_SPACE(sizeof(sockaddr_in))];
  msghdr msg{};
  msg.msg_name = &src;
  msg.msg_namelen = sizeof src;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;

  ssize_t n;
  do n = ::recvmsg(fd, &msg, flags | MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    ec.assign(errno, boost::system::system_category());
    return std::nullopt;
  }
  UdpDatagram d;
  d.length = static_cast<std::size_t>(n);
  d.truncated = (msg.msg_flags & MSG_TRUNC) != 0;
  d.source = to_endpoint(reinterpret_cast<sockaddr*>(&src));
  bool have_dst = false;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if ((c->cmsg_level == SOL_IP && c->cmsg_type == IP_ORIGDSTADDR) ||
        (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_ORIGDSTADDR)) {
      sockaddr_storage dst{};
      std::memcpy(&dst, CMSG_DATA(c), std::min<std::size_t>(c->cmsg_len - CMSG_LEN(0), sizeof dst));
      d.original_dst = to_endpoint(reinterpret_cast<sockaddr*>(&dst));
      have_dst = true;
    }
  }
  if (!have_dst) d.original_dst = local_endpoint(fd);  // a socket without the option: its own address
  ec.clear();
  return d;
}

UniqueFd open_udp_reply_socket(const relay::Endpoint& original_dst, const std::optional<relay::Endpoint>& app,
                               boost::system::error_code& ec) {
  UniqueFd fd(transparent_socket(original_dst, SOCK_DGRAM, Share::same_user));
  if (fd && bind_to(fd.get(), original_dst) == 0) {
    if (!app) {
      ec.clear();
      return fd;
    }
    sockaddr_storage ss;
    socklen_t len = to_sockaddr(*app, ss);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) == 0) {
      ec.clear();
      return fd;
    }
  }
  ec.assign(errno, boost::system::system_category());
  return UniqueFd();
}

bool set_socket_mark(int fd, std::uint32_t mark) {
  return ::setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) == 0;
}

}  // namespace flowrelay::linux_host
