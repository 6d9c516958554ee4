#include "relay/flow_meta.hpp"

#include <charconv>

namespace flowrelay::relay {

std::optional<Endpoint> parse_endpoint(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (text.starts_with('[')) {
    const auto close = text.find("]:");
    if (close == std::string_view::npos) return std::nullopt;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc{} || end != port.data() + port.size() || port.empty() || value > 65535) return std::nullopt;
  boost::system::error_code aec;
  auto address = boost::asio::ip::make_address(std::string(host), aec);
  if (aec) return std::nullopt;
  return Endpoint{address, static_cast<std::uint16_t>(value)};
}

}  // namespace flowrelay::relay
