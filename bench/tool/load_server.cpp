#include "load_server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <vector>

namespace flowrelay::bench {

namespace asio = boost::asio;
using asio::awaitable;
using asio::ip::tcp;
using asio::ip::udp;
using boost::system::error_code;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

std::optional<HostPort> parse_host_port(const std::string& text) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) return std::nullopt;
  std::string host = text.substr(0, colon);
  const std::string port_text = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty()) host = "127.0.0.1";
  unsigned port = 0;
  auto [end, err] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (err != std::errc{} || end != port_text.data() + port_text.size() || port > 65535) return std::nullopt;
  error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (ec) return std::nullopt;
  return HostPort{address, static_cast<std::uint16_t>(port)};
}

namespace {

constexpr std::size_t echo_buffer_bytes = 16 * 1024;
constexpr std::size_t bulk_buffer_bytes = 128 * 1024;

// Content is never looked at: one buffer per thread serves every sink and every source on it.
std::vector<char>& bulk_buffer() {
  thread_local std::vector<char> buffer(bulk_buffer_bytes, 'x');
  return buffer;
}

void report_exception(std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "flowrelay-bench serve: %s\n", ex.what());
  }
}

awaitable<void> run_echo(tcp::socket& s) {
  std::vector<char> buffer(echo_buffer_bytes);
  for (;;) {
    auto [ec, n] = co_await s.async_read_some(asio::buffer(buffer), use_tuple);
    if (ec) co_return;
    auto [wec, w] = co_await asio::async_write(s, asio::buffer(buffer.data(), n), use_tuple);
    if (wec) co_return;
  }
}

awaitable<void> run_sink(std::shared_ptr<tcp::socket> s) {
  for (;;) {
    auto [ec, n] = co_await s->async_read_some(asio::buffer(bulk_buffer()), use_tuple);
    if (ec) break;
  }
  error_code ignored;
  s->shutdown(tcp::socket::shutdown_both, ignored);
}

awaitable<void> run_source(std::shared_ptr<tcp::socket> s) {
  for (;;) {
    auto [ec, n] = co_await s->async_write_some(asio::buffer(bulk_buffer()), use_tuple);
    if (ec) co_return;
  }
}

// The server closes first, like an HTTP/1.0 server: the TIME_WAIT lands on the listening side, so
// a long cps run does not use up the client's (or a relay's) ephemeral ports.
awaitable<void> run_once(tcp::socket& s) {
  unsigned char length[2];
  auto [ec, n] = co_await asio::async_read(s, asio::buffer(length), use_tuple);
  if (ec) co_return;
  std::vector<char> payload(std::size_t{length[0]} << 8 | length[1]);
  std::tie(ec, n) = co_await asio::async_read(s, asio::buffer(payload), use_tuple);
  if (ec) co_return;
  std::tie(ec, n) = co_await asio::async_write(s, asio::buffer(payload), use_tuple);
  error_code ignored;
  s.shutdown(tcp::socket::shutdown_both, ignored);
  s.close(ignored);
}

awaitable<void> serve_tcp(tcp::socket socket) {
  error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  char command = 0;
  auto [rec, n] = co_await asio::async_read(socket, asio::buffer(&command, 1), use_tuple);
  if (rec) co_return;
  switch (static_cast<Command>(command)) {
  case Command::echo:
    co_await run_echo(socket);
    break;
  case Command::once:
    co_await run_once(socket);
    break;
  case Command::sink:
    co_await run_sink(std::make_shared<tcp::socket>(std::move(socket)));
    break;
  case Command::source:
    co_await run_source(std::make_shared<tcp::socket>(std::move(socket)));
    break;
  case Command::both: {
    auto shared = std::make_shared<tcp::socket>(std::move(socket));
    asio::co_spawn(shared->get_executor(), run_source(shared), report_exception);
    co_await run_sink(shared);
    break;
  }
  default:
    break; // unknown command: drop the flow
  }
}

awaitable<void> serve_udp(udp::socket& socket) {
  // Wait for readability, then drain with non-blocking calls: one wake-up per burst, not one
  // coroutine resumption per datagram, so the server is not what limits a UDP measurement.
  std::vector<char> buffer(65536);
  udp::endpoint peer;
  error_code ec;
  socket.non_blocking(true, ec);
  for (;;) {
    auto [wec] = co_await socket.async_wait(udp::socket::wait_read, use_tuple);
    if (wec == asio::error::operation_aborted || !socket.is_open()) co_return;
    for (int i = 0; i < 256; ++i) {
      const std::size_t n = socket.receive_from(asio::buffer(buffer), peer, 0, ec);
      if (ec == asio::error::would_block) break;
      if (ec) continue; // an ICMP error from an earlier peer: that datagram is gone, go on
      socket.send_to(asio::buffer(buffer.data(), n), peer, 0, ec); // a full send buffer drops it
    }
  }
}

} // namespace

struct LoadServer::Impl {
  Options options;
  // Declared before the sockets so that the sockets are destroyed first.
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  std::vector<std::thread> threads;
  // Contexts other than the first have no work until a flow is dealt to them: keep them running.
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> keep_running;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::unique_ptr<udp::socket> udp_socket;
  std::atomic<std::uint64_t> accepted{0};
  std::uint16_t tcp_port = 0;
  std::uint16_t udp_port = 0;
  bool running = false;

  awaitable<void> accept_loop() {
    std::size_t next = 0;
    asio::steady_timer backoff(acceptor->get_executor());
    for (;;) {
      auto& context = *contexts[next++ % contexts.size()];
      tcp::socket socket(context);
      auto [ec] = co_await acceptor->async_accept(socket, use_tuple);
      if (ec == asio::error::operation_aborted || !acceptor->is_open()) co_return;
      if (ec) {
        // EMFILE and friends: back off instead of spinning on a listener that stays readable.
        backoff.expires_after(std::chrono::milliseconds(10));
        co_await backoff.async_wait(use_tuple);
        continue;
      }
      accepted.fetch_add(1, std::memory_order_relaxed);
      asio::co_spawn(context, serve_tcp(std::move(socket)), report_exception);
    }
  }
};

LoadServer::LoadServer(Options options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  if (impl_->options.threads == 0) impl_->options.threads = 1;
}

LoadServer::~LoadServer() { stop(); }

void LoadServer::start() {
  auto& im = *impl_;
  if (im.running) return;
  for (unsigned i = 0; i < im.options.threads; ++i) im.contexts.push_back(std::make_unique<asio::io_context>());
  auto& first = *im.contexts.front();

  if (!im.options.tcp_listen.empty()) {
    auto hp = parse_host_port(im.options.tcp_listen);
    if (!hp) throw std::runtime_error("bad TCP listen address: " + im.options.tcp_listen);
    tcp::endpoint endpoint(hp->address, hp->port);
    im.acceptor = std::make_unique<tcp::acceptor>(first);
    error_code ec;
    im.acceptor->open(endpoint.protocol(), ec);
    if (!ec) im.acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) im.acceptor->bind(endpoint, ec);
    if (!ec) im.acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) throw std::runtime_error("cannot listen on TCP " + im.options.tcp_listen + ": " + ec.message());
    im.tcp_port = im.acceptor->local_endpoint().port();
    asio::co_spawn(first, im.accept_loop(), report_exception);
  }
  if (!im.options.udp_listen.empty()) {
    auto hp = parse_host_port(im.options.udp_listen);
    if (!hp) throw std::runtime_error("bad UDP listen address: " + im.options.udp_listen);
    udp::endpoint endpoint(hp->address, hp->port);
    im.udp_socket = std::make_unique<udp::socket>(first);
    error_code ec;
    im.udp_socket->open(endpoint.protocol(), ec);
    if (!ec) im.udp_socket->bind(endpoint, ec);
    if (ec) throw std::runtime_error("cannot bind UDP " + im.options.udp_listen + ": " + ec.message());
    error_code ignored;
    im.udp_socket->set_option(asio::socket_base::receive_buffer_size(4 << 20), ignored);
    im.udp_socket->set_option(asio::socket_base::send_buffer_size(4 << 20), ignored);
    im.udp_port = im.udp_socket->local_endpoint().port();
    asio::co_spawn(first, serve_udp(*im.udp_socket), report_exception);
  }
  for (auto& context : im.contexts) {
    im.keep_running.push_back(asio::make_work_guard(*context));
    im.threads.emplace_back([c = context.get()] { c->run(); });
  }
  im.running = true;
}

void LoadServer::stop() {
  auto& im = *impl_;
  if (!im.running) return;
  for (auto& context : im.contexts) context->stop();
  for (auto& thread : im.threads) thread.join();
  im.threads.clear();
  im.keep_running.clear();
  im.acceptor.reset();
  im.udp_socket.reset();
  // Destroying the contexts destroys the suspended coroutines and the sockets they own.
  im.contexts.clear();
  im.running = false;
}

std::uint16_t LoadServer::tcp_port() const { return impl_->tcp_port; }
std::uint16_t LoadServer::udp_port() const { return impl_->udp_port; }
std::uint64_t LoadServer::tcp_accepted() const { return impl_->accepted.load(std::memory_order_relaxed); }

} // namespace flowrelay::bench
