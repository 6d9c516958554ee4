#pragma once
// The daemon's control socket: a unix stream socket (mode 0600) answering one command per
// connection. The client writes a line ("flows", "epochs", "epochs-table"), the daemon writes its
// answer and closes. `flowrelay flows` / `flowrelay epochs` are the clients.

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace flowrelay::linux_host {

struct ControlServerLimits {
  std::size_t max_request = 4096;                     // a longer line: closed unanswered
  std::chrono::milliseconds read_timeout{2000};       // a client that says nothing by then: closed
  std::chrono::milliseconds write_timeout{10000};     // one that does not take its answer by then: closed
  std::size_t max_connections = 32;                   // more at once: the newest are closed at once
};

/// Serves commands on the io_context given (the control thread): the handler runs there. A
/// client cannot hold the daemon: requests are bounded in size and time, connections in number,
/// and accepting pauses (100 ms) instead of spinning when the process is out of descriptors.
class ControlServer {
 public:
  using Handler = std::function<std::string(std::string_view command)>;

  /// Binds `path` (replacing a stale socket file nobody answers on; refusing one a live daemon
  /// answers on) with mode 0600. Throws std::system_error naming the path.
  ControlServer(boost::asio::io_context& io, std::string path, Handler handler, ControlServerLimits limits = {});
  ~ControlServer();  // closes and unlinks
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  void close();
  const std::string& path() const { return path_; }

 private:
  void accept();
  void serve(boost::asio::local::stream_protocol::socket socket);

  std::string path_;
  Handler handler_;
  ControlServerLimits limits_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  boost::asio::steady_timer backoff_;
  std::shared_ptr<std::size_t> open_ = std::make_shared<std::size_t>(0);  // connections being served
  bool bound_ = false;
};

/// Sends `command` to the daemon on `path`; its answer, or nullopt with `error` set.
/// Gives up after `timeout_ms`.
std::optional<std::string> control_request(const std::string& path, std::string_view command, std::string& error,
                                           int timeout_ms = 5000);

}  // namespace flowrelay::linux_host
