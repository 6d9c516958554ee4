#pragma once
// sockaddr <-> relay::Endpoint, for the Linux socket helpers and whoever wraps their fds.

#include "relay/flow_meta.hpp"

#include <sys/socket.h>

namespace flowrelay::linux_host {

/// AF_INET / AF_INET6 sockaddr to an endpoint. A v4-mapped IPv6 address stays IPv6.
relay::Endpoint to_endpoint(const sockaddr* sa);
/// The sockaddr for `e`; returns its length.
socklen_t to_sockaddr(const relay::Endpoint& e, sockaddr_storage& out);

/// getsockname / getpeername as endpoints (unspecified endpoint on error).
relay::Endpoint local_endpoint(int fd);
relay::Endpoint peer_endpoint(int fd);

}  // namespace flowrelay::linux_host
