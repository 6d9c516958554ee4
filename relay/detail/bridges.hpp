#pragma once
// What relay.cpp and the two bridges share inside relay/: the relay's logger and the bridges'
// entry points. Internal to relay/.

#include "relay/relay.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <spdlog/logger.h>

#include <memory>

namespace flowrelay::relay::detail {

/// The "relay" logger.
std::shared_ptr<spdlog::logger> relay_log();

/// Starts bridging a claimed TCP flow: dial, then the two pumps (relay/tcp_bridge.cpp).
void start_tcp_bridge(Relay& relay, FlowMeta meta, boost::asio::any_io_executor ex, std::unique_ptr<TcpFlow> app);

/// Starts a UDP association for a claimed flow; nullptr when the relay is full (relay/udp_bridge.cpp).
std::shared_ptr<UdpAssociation> start_udp_bridge(Relay& relay, FlowMeta meta, boost::asio::any_io_executor ex,
                                                 std::unique_ptr<UdpFlow> app);

}  // namespace flowrelay::relay::detail
