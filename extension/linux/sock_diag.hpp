#pragma once
// The network namespace's live TCP and UDP sockets (sock_diag over libmnl), and SOCK_DESTROY on an
// exact socket: the Linux half of a surgical TCP reclaim (the app sees ECONNABORTED, reconnects,
// and its new flow gets the new epoch's verdict).

#include "relay/flow_meta.hpp"

#include <cstdint>
#include <memory>
#include <vector>

namespace flowrelay::linux_host {

namespace detail {
class NetlinkSocket;
}

/// One socket as the kernel lists it. `local`/`remote` are the socket's own view: for an app's
/// outgoing flow, local = app endpoint, remote = destination. Dual-stack AF_INET6 sockets carrying
/// IPv4 show v4-mapped addresses (::ffff:a.b.c.d) and family AF_INET6.
struct SocketInfo {
  relay::Proto proto = relay::Proto::tcp;
  int family = 0;              // AF_INET or AF_INET6, as dumped (needed to destroy)
  relay::Endpoint local;
  relay::Endpoint remote;
  std::uint8_t state = 0;      // TCP_ESTABLISHED, TCP_LISTEN, ... (<netinet/tcp.h>); UDP: ESTABLISHED if connected, else CLOSE
  std::uint32_t uid = 0;
  std::uint32_t inode = 0;     // 0 for sockets without a file (TIME_WAIT, request socks)
  std::uint64_t cookie = 0;    // the kernel's socket cookie: identity that a reused tuple cannot fake
  std::uint32_t ifindex = 0;   // bound device, 0 if none
  std::uint32_t mark = 0;      // SO_MARK (the relay's upstream sockets carry the bypass mark)
};

/// What SOCK_DESTROY did.
enum class DestroyResult {
  destroyed,     // the socket was aborted: its owner sees ECONNABORTED
  gone,          // no socket with that tuple and cookie any more (closed, or the tuple was reused)
  unavailable,   // EOPNOTSUPP: "surgical reclaim unavailable" (kernel without CONFIG_INET_DIAG_DESTROY,
                 // or a protocol without destroy support); the controller should fall back
  not_permitted, // EPERM: needs CAP_NET_ADMIN in the socket's user namespace
  failed,        // anything else; see DestroyOutcome::error
};

/// "destroyed", "gone", "surgical reclaim unavailable", "not permitted", "failed".
const char* to_string(DestroyResult r);

struct DestroyOutcome {
  DestroyResult result = DestroyResult::failed;
  int error = 0;  // the errno behind it, 0 when destroyed
};

/// A sock_diag netlink socket bound to the calling thread's network namespace at construction.
/// Not thread-safe; cheap enough to keep one per controller.
class SockDiag {
 public:
  /// Throws std::system_error if the netlink socket cannot be opened.
  SockDiag();
  ~SockDiag();
  SockDiag(SockDiag&&) noexcept;
  SockDiag& operator=(SockDiag&&) noexcept;

  /// TCP and UDP sockets, IPv4 and IPv6, in every state. Throws std::system_error on a failed dump.
  std::vector<SocketInfo> dump();
  /// One protocol and family (AF_INET or AF_INET6).
  std::vector<SocketInfo> dump(relay::Proto proto, int family);

  /// SOCK_DESTROY on exactly this socket: the kernel looks it up by tuple and refuses if the cookie
  /// differs (the tuple now belongs to another socket), so a stale listing never kills a stranger.
  DestroyOutcome destroy(const SocketInfo& socket);

 private:
  std::unique_ptr<detail::NetlinkSocket> nl_;
};

}  // namespace flowrelay::linux_host
