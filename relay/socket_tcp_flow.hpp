#pragma once
// TcpFlow over a connected Asio TCP socket (forwarded and TPROXY connections, upstream dials).

#include "relay/tcp_flow.hpp"

#include <boost/asio/ip/tcp.hpp>

namespace flowrelay::relay {

class SocketTcpFlow final : public TcpFlow {
 public:
  /// Takes a connected socket; puts it in non-blocking mode and sets TCP_NODELAY.
  explicit SocketTcpFlow(boost::asio::ip::tcp::socket socket);

  void on_readable(ReadyFn fn, void* context) override;
  boost::asio::awaitable<boost::system::error_code> wait_writable() override;
  IoResult read(buffers::Chain& into, std::size_t max) override;
  IoResult write(buffers::Chain& from) override;
  void shutdown_write() override;
  void abort(bool reset) override;
  void close() override;
  int native_handle() const noexcept override { return const_cast<boost::asio::ip::tcp::socket&>(socket_).native_handle(); }

  boost::asio::ip::tcp::socket& socket() noexcept { return socket_; }

 private:
  boost::asio::ip::tcp::socket socket_;
  bool bulk_ = false;  // recent reads were large: read into 64 KiB chunks
};

}  // namespace flowrelay::relay
