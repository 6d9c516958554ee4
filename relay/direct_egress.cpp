#include "relay/detail/dial.hpp"
#include "relay/egress.hpp"
#include "relay/metrics.hpp"
#include "relay/proxy_egress.hpp"
#include "relay/socket_mark.hpp"
#include "relay/socket_tcp_flow.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <mutex>
#include <set>
#include <string>

namespace flowrelay::relay {

namespace asio = boost::asio;
using boost::system::error_code;
using asio::ip::tcp;

namespace {

metrics::DialFailure dial_failure(const error_code& ec) {
  if (ec == asio::error::connection_refused) return metrics::DialFailure::refused;
  if (ec == asio::error::timed_out) return metrics::DialFailure::timeout;
  if (ec == asio::error::network_unreachable || ec == asio::error::host_unreachable) return metrics::DialFailure::unreachable;
  if (ec.category() == proxy_category()) return metrics::DialFailure::proxy;
  return metrics::DialFailure::other;
}

}  // namespace

void count_dial_failure(const char* via, const error_code& ec) noexcept {
  metrics::bump(metrics::local().dials_for(via).failures[static_cast<std::size_t>(dial_failure(ec))]);
}

const char* intern_via(std::string_view name) {
  static std::mutex mu;
  static std::set<std::string, std::less<>> names;  // nodes never move: the pointers stay valid
  std::lock_guard lock(mu);
  auto it = names.find(name);
  if (it == names.end()) it = names.emplace(name).first;
  return it->c_str();
}

namespace detail {

asio::awaitable<DialResult> dial_socket(tcp::endpoint to, std::chrono::milliseconds timeout, std::uint32_t mark,
                                        asio::any_io_executor ex, const char* via, Handshake handshake) {
  // Shared with the timer's handler, which may run after this frame has moved the socket on.
  struct Dial {
    tcp::socket socket;
    bool timed_out = false;
  };
  auto dial = std::make_shared<Dial>(Dial{tcp::socket(ex)});
  error_code ec;
  dial->socket.open(to.protocol(), ec);
  if (!ec) ec = set_socket_mark(dial->socket.native_handle(), mark);
  if (ec) co_return DialResult{ec, nullptr};

  const auto started = std::chrono::steady_clock::now();
  // One deadline for connect and handshake: a proxy that accepts and then says nothing fails the
  // flow like a destination that never answers.
  asio::steady_timer timer(ex, timeout);
  timer.async_wait([dial](error_code e) {
    if (e) return;
    dial->timed_out = true;
    error_code ignored;
    dial->socket.cancel(ignored);
  });
  std::tie(ec) = co_await dial->socket.async_connect(to, asio::as_tuple(asio::use_awaitable));
  if (!ec && handshake) ec = co_await handshake(dial->socket);
  timer.cancel();
  if (dial->timed_out) ec = asio::error::timed_out;
  if (ec) {
    count_dial_failure(via, ec);
    co_return DialResult{ec, nullptr, via};
  }
  metrics::local().dials_for(via).dial.observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  co_return DialResult{ec, std::make_unique<SocketTcpFlow>(std::move(dial->socket)), via};
}

}  // namespace detail

asio::awaitable<DialResult> DirectEgress::dial_tcp(const FlowMeta& meta, asio::any_io_executor ex) {
  static const char* const direct = intern_via("direct");
  return detail::dial_socket(tcp::endpoint(meta.dst.address, meta.dst.port), options_.connect_timeout, options_.mark,
                             std::move(ex), direct);
}

error_code DirectEgress::open_udp(asio::ip::udp::socket& socket, const Endpoint& dst) {
  const asio::ip::udp::endpoint to(dst.address, dst.port);
  error_code ec;
  socket.open(to.protocol(), ec);
  if (!ec) ec = set_socket_mark(socket.native_handle(), options_.mark);
  if (!ec) socket.connect(to, ec);
  if (!ec) socket.non_blocking(true, ec);
  return ec;
}

}  // namespace flowrelay::relay
