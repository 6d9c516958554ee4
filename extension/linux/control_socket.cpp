#include "extension/linux/control_socket.hpp"

#include "extension/linux/control_request.hpp"

#include "relay/accept_loop.hpp"

#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace flowrelay::linux_host {

namespace asio = boost::asio;
using asio::local::stream_protocol;
using boost::system::error_code;

namespace {

int connect_unix(const std::string& path) {
  sockaddr_un sa{};
  if (path.size() >= sizeof sa.sun_path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path, path.data(), path.size());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    int e = errno;
    ::close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

}  // namespace

ControlServer::ControlServer(asio::io_context& io, std::string path, Handler handler, ControlServerLimits limits)
    : path_(std::move(path)), handler_(std::move(handler)), limits_(limits), acceptor_(io), backoff_(io) {
  struct stat st{};
  if (::lstat(path_.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      throw std::system_error(EEXIST, std::generic_category(), "control socket " + path_ + " exists and is not a socket");
    int fd = connect_unix(path_);
    if (fd >= 0) {
      ::close(fd);
      throw std::system_error(EADDRINUSE, std::generic_category(),
                              "control socket " + path_ + ": another flowrelay answers on it");
    }
    ::unlink(path_.c_str());  // stale: a crashed run's
  }
  error_code ec;
  acceptor_.open(stream_protocol(), ec);
  if (!ec) {
    const mode_t old = ::umask(0077);  // never world-reachable, not even between bind and chmod
    acceptor_.bind(stream_protocol::endpoint(path_), ec);
    ::umask(old);
  }
  if (!ec && ::chmod(path_.c_str(), 0600) != 0) ec.assign(errno, boost::system::system_category());
  if (!ec) acceptor_.listen(16, ec);
  if (ec) throw std::system_error(ec.value(), std::generic_category(), "control socket " + path_);
  bound_ = true;
  accept();
}

ControlServer::~ControlServer() { close(); }

void ControlServer::close() {
  error_code ignored;
  acceptor_.close(ignored);
  if (bound_) ::unlink(path_.c_str());
  bound_ = false;
}

void ControlServer::accept() {
  acceptor_.async_accept([this](error_code ec, stream_protocol::socket s) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (relay::out_of_descriptors(ec)) {
      relay::log_accept_pause(ec);
      backoff_.expires_after(std::chrono::milliseconds(100));
      backoff_.async_wait([this](error_code bec) {
        if (!bec && acceptor_.is_open()) accept();
      });
      return;
    }
    if (!ec) serve(std::move(s));
    accept();
  });
}

namespace {

/// One client: its request line (bounded), a deadline for it, then the answer.
struct Connection {
  Connection(stream_protocol::socket s, std::size_t max_request, std::shared_ptr<std::size_t> open)
      : socket(std::move(s)), buf(max_request), deadline(socket.get_executor()), open(std::move(open)) {
    ++*this->open;
  }
  ~Connection() { --*open; }
  stream_protocol::socket socket;
  asio::streambuf buf;
  asio::steady_timer deadline;
  std::shared_ptr<std::size_t> open;
  std::string answer;

  /// Closes the connection unless it ends within `d`: a silent client, or one that never reads
  /// its answer, cannot hold it.
  static void expire_after(const std::shared_ptr<Connection>& c, std::chrono::milliseconds d) {
    c->deadline.expires_after(d);
    c->deadline.async_wait([w = std::weak_ptr<Connection>(c)](error_code ec) {
      if (ec) return;
      if (auto conn = w.lock()) {
        error_code ignored;
        conn->socket.close(ignored);  // the pending read or write fails, and the connection ends
      }
    });
  }
};

}  // namespace

void ControlServer::serve(stream_protocol::socket socket) {
  if (*open_ >= limits_.max_connections) return;  // closed as it goes out of scope
  auto c = std::make_shared<Connection>(std::move(socket), limits_.max_request, open_);
  Connection::expire_after(c, limits_.read_timeout);
  asio::async_read_until(c->socket, c->buf, '\n', [this, c](error_code rec, std::size_t n) {
    if (rec && rec != asio::error::eof) return;  // too long (not_found), timed out, or gone
    Connection::expire_after(c, limits_.write_timeout);
    const auto data = c->buf.data();  // one contiguous buffer (asio::streambuf)
    c->answer = handler_(control_command(std::string_view(static_cast<const char*>(data.data()), n)));
    asio::async_write(c->socket, asio::buffer(c->answer), [c](error_code, std::size_t) {
      error_code ignored;
      c->socket.shutdown(stream_protocol::socket::shutdown_both, ignored);
    });
  });
}

std::optional<std::string> control_request(const std::string& path, std::string_view command, std::string& error,
                                           int timeout_ms) {
  int fd = connect_unix(path);
  if (fd < 0) {
    error = "cannot reach the daemon on " + path + ": " + std::strerror(errno) +
            " (is `flowrelay run` running? --socket PATH names another socket)";
    return std::nullopt;
  }
  std::string req(command);
  req.push_back('\n');
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    error = std::string("control socket: ") + std::strerror(errno);
    ::close(fd);
    return std::nullopt;
  }
  std::string out;
  char buf[65536];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) != 1) {
      error = "control socket: no answer within " + std::to_string(timeout_ms) + " ms";
      ::close(fd);
      return std::nullopt;
    }
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = std::string("control socket: ") + std::strerror(errno);
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

}  // namespace flowrelay::linux_host
