#include "relay/socket_mark.hpp"

#include <cerrno>
#include <sys/socket.h>

namespace flowrelay::relay {

boost::system::error_code set_socket_mark(int fd, std::uint32_t mark) noexcept {
  if (mark == 0) return {};
#ifdef SO_MARK
  if (::setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) != 0)
    return {errno, boost::system::system_category()};
  return {};
#else
  (void)fd;
  return {ENOTSUP, boost::system::system_category()};
#endif
}

}  // namespace flowrelay::relay
