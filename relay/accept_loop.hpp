#pragma once
// The accept loop every TCP flow source runs: accept until the acceptor closes, and pause instead of
// spinning when the process is out of descriptors (DESIGN.md, "Bad input and faults").

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <utility>

namespace flowrelay::relay {

/// Out of descriptors or memory: an immediate retry would fail again.
bool out_of_descriptors(const boost::system::error_code& ec) noexcept;
/// Says (relay logger, warn) that accepting pauses, and why.
void log_accept_pause(const boost::system::error_code& ec);

/// Hands each accepted socket and its peer to on_accept(socket, remote) until the acceptor closes.
template <typename OnAccept>
boost::asio::awaitable<void> accept_loop(boost::asio::ip::tcp::acceptor& acceptor, OnAccept on_accept) {
  namespace asio = boost::asio;
  asio::steady_timer backoff(co_await asio::this_coro::executor);
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
    if (!acceptor.is_open() || ec == asio::error::operation_aborted) co_return;
    if (out_of_descriptors(ec)) {
      // Backing off lets flows finish and free descriptors; retrying at once would spin.
      log_accept_pause(ec);
      backoff.expires_after(std::chrono::milliseconds(100));
      co_await backoff.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    if (ec) continue;  // the client gave up between SYN and accept
    boost::system::error_code rec;
    const auto remote = socket.remote_endpoint(rec);
    if (rec) continue;
    on_accept(std::move(socket), remote);
  }
}

}  // namespace flowrelay::relay
