#pragma once
// Egress through an upstream proxy: SOCKS5 (RFC 1928, username/password RFC 1929) or HTTP CONNECT
// (RFC 9110). The handshake is part of the dial: the connect timeout covers connect and handshake,
// a refused or failed handshake fails the dial (the app's flow is reset), and nothing ever falls
// back to a direct connection. After the handshake the socket is an ordinary TcpFlow: the bytes
// move through the same zero-copy pumps. TCP only for now (UDP flows through a proxy: SOCKS5 UDP
// ASSOCIATE, not built yet; open_udp refuses).

#include "relay/egress.hpp"

#include <optional>
#include <string>

namespace flowrelay::relay {

struct ProxyEgressOptions {
  enum class Kind : std::uint8_t { socks5, http };
  Kind kind = Kind::socks5;
  Endpoint proxy;
  std::optional<std::pair<std::string, std::string>> credentials;  // user, password
  std::chrono::milliseconds connect_timeout{5000};
  std::uint32_t mark = 0;  // SO_MARK on the socket to the proxy
  std::string name = "proxy";  // what flows show as their `via`
};

/// Parses "socks5://HOST:PORT" or "http://HOST:PORT" (numeric address); nullopt otherwise.
std::optional<ProxyEgressOptions> parse_proxy_url(std::string_view url);

/// Why a proxy handshake failed (also the dial's error_code message).
const boost::system::error_category& proxy_category() noexcept;
enum class ProxyError {
  bad_reply = 1,          // not the protocol we spoke
  auth_required,          // the proxy wants credentials we do not have
  auth_failed,            // it refused the credentials
  refused,                // it refused the CONNECT (rule, unreachable destination, ...)
  ambiguous,              // the relay cannot tell which upstream the flow's rule names
};
boost::system::error_code make_error_code(ProxyError e) noexcept;
}  // namespace flowrelay::relay

template <>
struct boost::system::is_error_code_enum<flowrelay::relay::ProxyError> : std::true_type {};

namespace flowrelay::relay {

class ProxyEgress final : public Egress {
 public:
  explicit ProxyEgress(ProxyEgressOptions options)
      : options_(std::move(options)), via_(intern_via(options_.name)) {}
  boost::asio::awaitable<DialResult> dial_tcp(const FlowMeta& meta, boost::asio::any_io_executor ex) override;
  boost::system::error_code open_udp(boost::asio::ip::udp::socket& socket, const Endpoint& dst) override;
  const ProxyEgressOptions& options() const noexcept { return options_; }

 private:
  ProxyEgressOptions options_;
  const char* via_;
};

}  // namespace flowrelay::relay
