#include "relay/accept_loop.hpp"

#include "relay/detail/bridges.hpp"

#include <spdlog/spdlog.h>

#include <cerrno>

namespace flowrelay::relay {

bool out_of_descriptors(const boost::system::error_code& ec) noexcept {
  namespace error = boost::asio::error;
  return ec == error::no_descriptors || ec == error::no_buffer_space || ec == error::no_memory || ec.value() == ENFILE;
}

void log_accept_pause(const boost::system::error_code& ec) {
  detail::relay_log()->warn("accept: {}; pausing accepts for 100 ms", ec.message());
}

}  // namespace flowrelay::relay
