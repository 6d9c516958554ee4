#include "extension/linux/socket_address.hpp"

#include <netinet/in.h>

#include <cstring>

namespace flowrelay::linux_host {

using boost::asio::ip::address_v4;
using boost::asio::ip::address_v6;

relay::Endpoint to_endpoint(const sockaddr* sa) {
  relay::Endpoint e;
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    address_v4::bytes_type b;
    std::memcpy(b.data(), &in->sin_addr, 4);
    e.address = address_v4(b);
    e.port = ntohs(in->sin_port);
  } else if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    address_v6::bytes_type b;
    std::memcpy(b.data(), &in6->sin6_addr, 16);
    e.address = address_v6(b, in6->sin6_scope_id);
    e.port = ntohs(in6->sin6_port);
  }
  return e;
}

socklen_t to_sockaddr(const relay::Endpoint& e, sockaddr_storage& out) {
  std::memset(&out, 0, sizeof out);
  if (e.address.is_v4()) {
    auto* in = reinterpret_cast<sockaddr_in*>(&out);
    in->sin_family = AF_INET;
    in->sin_port = htons(e.port);
    auto b = e.address.to_v4().to_bytes();
    std::memcpy(&in->sin_addr, b.data(), 4);
    return sizeof(sockaddr_in);
  }
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&out);
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons(e.port);
  auto v6 = e.address.to_v6();
  auto b = v6.to_bytes();
  std::memcpy(&in6->sin6_addr, b.data(), 16);
  in6->sin6_scope_id = static_cast<std::uint32_t>(v6.scope_id());
  return sizeof(sockaddr_in6);
}

relay::Endpoint local_endpoint(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {};
  return to_endpoint(reinterpret_cast<sockaddr*>(&ss));
}

relay::Endpoint peer_endpoint(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {};
  return to_endpoint(reinterpret_cast<sockaddr*>(&ss));
}

}  // namespace flowrelay::linux_host
