#include "relay/socket_tcp_flow.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace flowrelay::relay {

namespace asio = boost::asio;
using boost::system::error_code;

SocketTcpFlow::SocketTcpFlow(asio::ip::tcp::socket socket) : socket_(std::move(socket)) {
  error_code ec;
  socket_.non_blocking(true, ec);
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
}

void SocketTcpFlow::on_readable(ReadyFn fn, void* context) {
  socket_.async_wait(asio::socket_base::wait_read, [fn, context](const error_code& ec) { fn(context, ec); });
}

asio::awaitable<error_code> SocketTcpFlow::wait_writable() {
  auto [ec] = co_await socket_.async_wait(asio::socket_base::wait_write, asio::as_tuple(asio::use_awaitable));
  co_return ec;
}

IoResult SocketTcpFlow::read(buffers::Chain& into, std::size_t max) {
  IoResult r;
  buffers::Pool* pool = buffers::Pool::local();
  auto scatter = buffers::Chain::prepare(*pool, bulk_ ? max : std::min(max, buffers::kSmallChunk));
  if (scatter.empty()) {
    r.ec = asio::error::no_buffer_space;
    return r;
  }
  const std::size_t room = scatter.bytes();  // commit() empties the scatter
  error_code ec;
  const std::size_t n = socket_.read_some(scatter, ec);
  into.commit(scatter, n);
  r.bytes = n;
  if (ec == asio::error::would_block || ec == asio::error::try_again) {
    r.would_block = true;
  } else if (ec == asio::error::eof) {
    r.eof = true;
  } else if (ec) {
    r.ec = ec;
  } else {
    // Stay in 64 KiB chunks while reads are large; small reads (interactive traffic) go back to
    // one 16 KiB chunk so a queued message does not pin a large one.
    bulk_ = n >= buffers::kSmallChunk;
    r.would_block = n < room;  // a short read emptied the socket buffer
  }
  return r;
}

IoResult SocketTcpFlow::write(buffers::Chain& from) {
  IoResult r;
  error_code ec;
  const std::size_t n = socket_.write_some(from.gather(), ec);
  from.consume(n);
  r.bytes = n;
  if (ec == asio::error::would_block || ec == asio::error::try_again) {
    r.would_block = true;
  } else if (ec) {
    r.ec = ec;
  } else if (!from.empty()) {
    r.would_block = true;  // short write: the send buffer is full
  }
  return r;
}

void SocketTcpFlow::shutdown_write() {
  error_code ec;
  socket_.shutdown(asio::socket_base::shutdown_send, ec);
}

void SocketTcpFlow::abort(bool reset) {
  if (!socket_.is_open()) return;
  error_code ec;
  if (reset) socket_.set_option(asio::socket_base::linger(true, 0), ec);  // close() sends RST
  socket_.close(ec);
}

void SocketTcpFlow::close() { abort(false); }

}  // namespace flowrelay::relay
