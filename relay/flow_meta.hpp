#pragma once
// Identity of one flow as every layer sees it: the relay, the control plane and the flow sources.

#include <boost/asio/ip/address.hpp>

#include <chrono>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace flowrelay::relay {

enum class Proto : std::uint8_t { tcp, udp };

/// An address and port, protocol-neutral (asio's tcp and udp endpoints are distinct types).
struct Endpoint {
  boost::asio::ip::address address;
  std::uint16_t port = 0;

  friend bool operator==(const Endpoint&, const Endpoint&) = default;
  friend std::strong_ordering operator<=>(const Endpoint& a, const Endpoint& b) {
    if (a.address != b.address) return a.address < b.address ? std::strong_ordering::less : std::strong_ordering::greater;
    return a.port <=> b.port;
  }
  /// "1.2.3.4:80" or "[::1]:80".
  std::string to_string() const {
    auto a = address.to_string();
    return (address.is_v6() ? "[" + a + "]" : a) + ":" + std::to_string(port);
  }
};

using FlowId = std::uint64_t;
using EpochId = std::uint64_t;

/// Who opened the flow: a Linux uid/pid, or an Apple signing identifier.
struct AppIdentity {
  std::optional<std::uint32_t> uid;
  std::optional<std::int32_t> pid;
  std::string signing_id;  // empty where unknown
};

/// Everything known about a flow when it is claimed (or seen bypassing). Cheap to copy.
struct FlowMeta {
  FlowId id = 0;
  Proto proto = Proto::tcp;
  Endpoint app;          // the application's side (source of the flow)
  Endpoint dst;          // where the application meant to go
  std::string hostname;  // empty where unknown
  AppIdentity app_identity;
  EpochId epoch = 0;     // epoch whose verdict put the flow where it is
  std::chrono::system_clock::time_point claimed_at{};
};

/// Parses "1.2.3.4:80" or "[::1]:80"; nullopt if it is not an address and a port (1-65535, or 0 to
/// let the kernel pick).
std::optional<Endpoint> parse_endpoint(std::string_view text);

inline const char* to_string(Proto p) { return p == Proto::tcp ? "tcp" : "udp"; }

}  // namespace flowrelay::relay
