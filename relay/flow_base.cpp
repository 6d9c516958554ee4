#include "relay/detail/flow_base.hpp"

#if defined(__linux__)
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#endif

namespace flowrelay::relay::detail {

std::optional<std::uint32_t> FlowBase::smoothed_rtt_us(int fd) noexcept {
#if defined(__linux__)
  if (fd < 0) return std::nullopt;
  tcp_info info{};
  socklen_t len = sizeof info;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0 || info.tcpi_rtt == 0) return std::nullopt;
  return info.tcpi_rtt;
#else
  (void)fd;
  return std::nullopt;  // macOS: TCP_CONNECTION_INFO on the NE side is not ours to read
#endif
}

}  // namespace flowrelay::relay::detail
