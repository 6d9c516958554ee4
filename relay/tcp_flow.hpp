#pragma once
// One side of a relayed TCP flow: the application's side (a TPROXY socket, a forwarded connection,
// an NEAppProxyTCPFlow) or the upstream side (a socket the Egress dialled).
//
// The pump waits for readiness with no buffer held, then moves what is there in one non-blocking
// call: this is how an idle flow holds no chunk, and how backpressure falls out of the loop.

#include "buffers/chain.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>

#include <cstddef>

namespace flowrelay::relay {

/// Outcome of one non-blocking read or write.
struct IoResult {
  std::size_t bytes = 0;
  bool would_block = false;  // nothing more right now
  bool eof = false;          // read: the peer shut down its sending side
  boost::system::error_code ec;  // a real failure (reset, broken pipe, ...)
};

class TcpFlow {
 public:
  virtual ~TcpFlow() = default;

  /// Called once when a read would not block (data, EOF or an error is pending); an error means
  /// the flow is being torn down. A plain callback, not a coroutine: an idle flow parks here, and
  /// this is all it holds while it waits (no buffer, no coroutine frame).
  using ReadyFn = void (*)(void* context, const boost::system::error_code& ec);
  virtual void on_readable(ReadyFn fn, void* context) = 0;
  /// Completes when a write would not block.
  virtual boost::asio::awaitable<boost::system::error_code> wait_writable() = 0;

  /// Reads what is available, up to about max bytes, into fresh chunks appended to `into`.
  virtual IoResult read(buffers::Chain& into, std::size_t max) = 0;
  /// Writes from the front of `from`, consuming what the peer took.
  virtual IoResult write(buffers::Chain& from) = 0;

  /// Half-close: the peer sees EOF; the other direction keeps flowing.
  virtual void shutdown_write() = 0;
  /// Ends the flow now; with reset the peer sees a TCP RST rather than a clean EOF. Idempotent.
  virtual void abort(bool reset) = 0;
  /// Orderly close once both directions are done. Idempotent.
  virtual void close() = 0;

  /// The socket descriptor behind this flow, or -1 (then bytes can only move through chunks).
  virtual int native_handle() const noexcept { return -1; }
};

}  // namespace flowrelay::relay
