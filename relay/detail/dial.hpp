#pragma once
// The one way relay/ dials TCP: open, mark, connect and an optional handshake (an upstream proxy's)
// under one deadline; counted in the thread's metrics block. Internal to relay/. Every argument is
// taken by value: callers may return this coroutine unawaited, and their temporaries die first.

#include "relay/egress.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <functional>

namespace flowrelay::relay::detail {

/// `via`: an interned name (intern_via) the dial is counted under and the result carries.
/// Speaks a proxy's protocol on a connected socket; a non-empty error fails the dial.
using Handshake = std::function<boost::asio::awaitable<boost::system::error_code>(boost::asio::ip::tcp::socket&)>;

boost::asio::awaitable<DialResult> dial_socket(boost::asio::ip::tcp::endpoint to, std::chrono::milliseconds timeout,
                                               std::uint32_t mark, boost::asio::any_io_executor ex,
                                               const char* via, Handshake handshake = {});

}  // namespace flowrelay::relay::detail
