#pragma once
// GET /metrics over HTTP/1.1 (Boost.Beast) on one address: Prometheus scrapes it. It runs on the
// io_context it is given (the daemon's control thread, never a reactor shard), serves a few clients
// at a time, each with a deadline, and answers anything but GET /metrics with 404.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <functional>
#include <memory>
#include <string>

namespace flowrelay::control {

class MetricsServer {
 public:
  using Render = std::function<std::string()>;
  /// Binds `listen` ("127.0.0.1:9464", "[::1]:9464"). Throws std::system_error naming the address.
  MetricsServer(boost::asio::io_context& io, const std::string& listen, Render render);
  ~MetricsServer();  // close() and let go; the io_context may still run its completions
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  boost::asio::ip::tcp::endpoint local_endpoint() const;
  /// Stops accepting and closes the clients. Call on the io_context's thread (or before it runs).
  void close();

  struct State;  // shared with the accept loop and the clients (metrics_server.cpp)

 private:
  std::shared_ptr<State> state_;
};

}  // namespace flowrelay::control
