#pragma once
// The accept loop every TCP flow source runs: accept until the acceptor closes, and pause instead of
// spinning when the process is out of descriptors (DESIGN.md, "Bad input and faults"); and where
// an accepted connection runs (Reactor::place()).

#include "relay/reactor.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <utility>

#include <unistd.h>

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
    asio::ip::tcp::endpoint remote;  // filled by accept() itself: no getpeername() per connection
    auto [ec, socket] = co_await acceptor.async_accept(remote, asio::as_tuple(asio::use_awaitable));
    if (!acceptor.is_open() || ec == asio::error::operation_aborted) co_return;
    if (out_of_descriptors(ec)) {
      // Backing off lets flows finish and free descriptors; retrying at once would spin.
      log_accept_pause(ec);
      backoff.expires_after(std::chrono::milliseconds(100));
      co_await backoff.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    if (ec) continue;  // the client gave up between SYN and accept
    on_accept(std::move(socket), remote);
  }
}

/// Runs a connection accepted on shard `home` where Reactor::place() says: adopt(socket, remote)
/// right here, or on the other shard's thread with the descriptor moved there. adopt is copied into
/// the handoff: what it refers to must outlive the reactor's queued work (a source's stop() waits
/// for a turn of every shard).
template <typename Adopt>
void place_accepted(Reactor& reactor, std::size_t home, boost::asio::ip::tcp::socket socket,
                    const boost::asio::ip::tcp::endpoint& remote, Adopt adopt) {
  namespace asio = boost::asio;
  const std::size_t to = reactor.place(home);
  if (to == home) {
    adopt(std::move(socket), remote);
    return;
  }
  boost::system::error_code ec;
  const int fd = socket.release(ec);
  if (ec) return;
  asio::post(reactor.context(to), [&io = reactor.context(to), fd, remote, adopt = std::move(adopt)]() mutable {
    asio::ip::tcp::socket moved(io);
    boost::system::error_code e;
    moved.assign(remote.protocol(), fd, e);
    if (e) {
      ::close(fd);
      return;
    }
    adopt(std::move(moved), remote);
  });
}

}  // namespace flowrelay::relay
