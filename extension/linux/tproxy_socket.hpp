#pragma once
// The sockets TPROXY hands claimed flows to, as plain fds (UniqueFd): the relay wraps them in
// Asio (tcp::acceptor::assign, udp::socket::assign; Asio sets O_NONBLOCK itself). All are created
// close-on-exec and blocking. Needs CAP_NET_ADMIN (IP_TRANSPARENT) in the socket's namespace.
//
// TCP: the listener is bound to the tproxy address (127.0.0.1:P, [::1]:P); an accepted socket's
//      local address IS the app's original destination (original_destination()).
// UDP: one listening socket per family; recv_with_original_dst() gives each datagram's app
//      endpoint and original destination. Replies go out of a reply socket bound to that original
//      destination, so the app sees them come from where it sent to.
//      Note (seen on this kernel, tested): TPROXY's UDP lookup prefers an existing transparent socket
//      bound to the destination, so while a connected reply socket exists, the app's later datagrams
//      of that flow arrive on it, not on the listener: read reply sockets too (they carry
//      IP_RECVORIGDSTADDR as well, so recv_with_original_dst works on them).

#include "extension/linux/unique_fd.hpp"
#include "relay/flow_meta.hpp"

#include <boost/system/error_code.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace flowrelay::linux_host {

/// Transparent TCP listener on `local` (IPv6: v6-only, so both families can share a port), with
/// SO_REUSEADDR (Linux lets no other socket bind a listening TCP port). Throws std::system_error.
UniqueFd open_tproxy_tcp_listener(const relay::Endpoint& local, int backlog = 1024);

/// Where the app meant to connect: the local address of a socket accepted from a TPROXY listener.
relay::Endpoint original_destination(int accepted_fd);

/// Transparent UDP socket on `local`, reporting each datagram's original destination. Without
/// SO_REUSEADDR or SO_REUSEPORT: no other socket, of any user, can bind `local` while it is open.
/// Throws std::system_error.
UniqueFd open_tproxy_udp_socket(const relay::Endpoint& local);

struct UdpDatagram {
  std::size_t length = 0;         // bytes stored in the buffer
  bool truncated = false;         // the datagram was longer than the buffer
  relay::Endpoint source;         // the app's endpoint
  relay::Endpoint original_dst;   // where the app sent it
};

/// One recvmsg on a socket from open_tproxy_udp_socket / open_udp_reply_socket. `flags` as for
/// recvmsg (MSG_DONTWAIT to poll). nullopt with `ec` set on error (would_block is an error here).
std::optional<UdpDatagram> recv_with_original_dst(int fd, std::span<std::byte> buffer,
                                                  boost::system::error_code& ec, int flags = 0);

/// A socket that sends as `original_dst` (IP_TRANSPARENT + SO_REUSEPORT, bound to it), connected to
/// `app` when given. Reply sockets of this process share the address; sockets of other users cannot
/// join (the kernel keeps a reuseport group to one uid). Never throws for address-in-use: returns an
/// empty fd with ec == errc::address_in_use when another socket holds that address (count it, drop
/// the reply); other failures set ec likewise.
UniqueFd open_udp_reply_socket(const relay::Endpoint& original_dst, const std::optional<relay::Endpoint>& app,
                               boost::system::error_code& ec);

/// SO_MARK: the relay's upstream sockets carry the bypass mark so the ruleset never claims them
/// again (the loop guard). Returns false with errno set on failure.
bool set_socket_mark(int fd, std::uint32_t mark);

}  // namespace flowrelay::linux_host
