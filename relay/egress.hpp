#pragma once
// How the relay reaches a flow's destination. DirectEgress dials it; ProxyEgress goes through an
// upstream proxy (relay/proxy_egress.hpp).

#include "relay/flow_meta.hpp"
#include "relay/tcp_flow.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/udp.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string_view>
#include <utility>

namespace flowrelay::relay {

/// A dial's outcome: the error, or the connected flow; `via` names the way it left ("direct", an
/// upstream's name) and lives as long as the process (see intern_via).
struct DialResult {
  boost::system::error_code error;
  std::unique_ptr<TcpFlow> flow;
  const char* via = "direct";
};

/// A process-lifetime copy of `name`, the same pointer for equal names: flows keep `via` after the
/// egress that named it is gone, and thousands of flows share one string.
const char* intern_via(std::string_view name);

/// Counts a dial that failed before reaching a socket (e.g. no way out could be chosen) under
/// `via` (interned), by the reason `ec` gives.
void count_dial_failure(const char* via, const boost::system::error_code& ec) noexcept;

class Egress {
 public:
  virtual ~Egress() = default;
  /// Dials meta.dst on `ex`; on failure (refused, unreachable, timed out) the error and no flow.
  virtual boost::asio::awaitable<DialResult> dial_tcp(const FlowMeta& meta, boost::asio::any_io_executor ex) = 0;
  /// Opens `socket` and connects it to dst (replies then come only from dst).
  virtual boost::system::error_code open_udp(boost::asio::ip::udp::socket& socket, const Endpoint& dst) = 0;
};

struct DirectEgressOptions {
  std::chrono::milliseconds connect_timeout{5000};
  std::uint32_t mark = 0;  // SO_MARK on every upstream socket (Linux: the bypass mark); 0 = none
};

/// Connects straight to the destination.
class DirectEgress final : public Egress {
 public:
  explicit DirectEgress(DirectEgressOptions options = {}) : options_(options) {}
  boost::asio::awaitable<DialResult> dial_tcp(const FlowMeta& meta, boost::asio::any_io_executor ex) override;
  boost::system::error_code open_udp(boost::asio::ip::udp::socket& socket, const Endpoint& dst) override;
  const DirectEgressOptions& options() const noexcept { return options_; }

 private:
  DirectEgressOptions options_;
};

}  // namespace flowrelay::relay
