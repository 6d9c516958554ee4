#pragma once
// The daemon's control socket: a unix stream socket (mode 0600) answering one command per
// connection. The client writes a line ("flows", "epochs", "epochs-table"), the daemon writes its
// answer and closes. `flowrelay flows` / `flowrelay epochs` are the clients.

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace flowrelay::linux_host {

/// Serves commands on the io_context given (the control thread): the handler runs there.
class ControlServer {
 public:
  using Handler = std::function<std::string(std::string_view command)>;

  /// Binds `path` (replacing a stale socket file nobody answers on; refusing one a live daemon
  /// answers on) with mode 0600. Throws std::system_error naming the path.
  ControlServer(boost::asio::io_context& io, std::string path, Handler handler);
  ~ControlServer();  // closes and unlinks
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  void close();
  const std::string& path() const { return path_; }

 private:
  void accept();
  std::string path_;
  Handler handler_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  bool bound_ = false;
};

/// Sends `command` to the daemon on `path`; its answer, or nullopt with `error` set.
/// Gives up after `timeout_ms`.
std::optional<std::string> control_request(const std::string& path, std::string_view command, std::string& error,
                                           int timeout_ms = 5000);

}  // namespace flowrelay::linux_host
