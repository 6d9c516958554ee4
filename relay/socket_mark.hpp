#pragma once
// The platform seam for marking upstream sockets (Linux SO_MARK). Elsewhere a non-zero mark is an
// error: the caller asked for routing that this platform cannot give.

#include <boost/system/error_code.hpp>

#include <cstdint>

namespace flowrelay::relay {

/// Sets SO_MARK on fd; mark 0 is a no-op. Needs CAP_NET_ADMIN.
boost::system::error_code set_socket_mark(int fd, std::uint32_t mark) noexcept;

}  // namespace flowrelay::relay
