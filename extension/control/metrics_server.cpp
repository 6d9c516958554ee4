#include "extension/control/metrics_server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <chrono>
#include <system_error>

namespace flowrelay::control {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;

namespace {
constexpr int kMaxClients = 8;                        // a scraper or two, and a curl
constexpr auto kClientDeadline = std::chrono::seconds(5);  // a silent client is cut off
}  // namespace

struct MetricsServer::State {
  State(asio::io_context& io, Render r) : acceptor(io), render(std::move(r)) {}
  tcp::acceptor acceptor;
  Render render;
  int clients = 0;
  bool closed = false;
};

namespace {

asio::awaitable<void> serve_client(std::shared_ptr<MetricsServer::State> s, tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer(8192);
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(0);         // a scrape has no body
    parser.header_limit(8192);
    stream.expires_after(kClientDeadline);
    auto [ec, n] = co_await http::async_read(stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
    if (ec || s->closed) break;
    const auto& req = parser.get();
    http::response<http::string_body> res;
    res.version(req.version());
    res.keep_alive(req.keep_alive());
    const auto target = req.target();
    if (req.method() == http::verb::get && (target == "/metrics" || target.starts_with("/metrics?"))) {
      res.result(http::status::ok);
      res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
      res.body() = s->render();
    } else {
      res.result(http::status::not_found);
      res.set(http::field::content_type, "text/plain");
      res.body() = "flowrelay serves GET /metrics\n";
    }
    res.prepare_payload();
    stream.expires_after(kClientDeadline);
    auto [wec, w] = co_await http::async_write(stream, res, asio::as_tuple(asio::use_awaitable));
    if (wec || !res.keep_alive()) break;
  }
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
}

asio::awaitable<void> accept_loop(std::shared_ptr<MetricsServer::State> s) {
  for (;;) {
    auto [ec, socket] = co_await s->acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
    if (s->closed || !s->acceptor.is_open()) co_return;
    if (ec) continue;
    if (s->clients >= kMaxClients) continue;  // the socket closes here: the scraper retries
    ++s->clients;
    asio::co_spawn(s->acceptor.get_executor(), serve_client(s, std::move(socket)),
                   [s](std::exception_ptr) { --s->clients; });
  }
}

tcp::endpoint parse_listen(const std::string& listen) {
  const auto colon = listen.rfind(':');
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (ec || colon == std::string::npos) throw std::system_error(EINVAL, std::generic_category(), "metrics.listen " + listen);
  return {address, static_cast<unsigned short>(std::stoul(listen.substr(colon + 1)))};
}

}  // namespace

MetricsServer::MetricsServer(asio::io_context& io, const std::string& listen, Render render)
    : state_(std::make_shared<State>(io, std::move(render))) {
  const tcp::endpoint ep = parse_listen(listen);
  try {
    state_->acceptor.open(ep.protocol());
    state_->acceptor.set_option(asio::socket_base::reuse_address(true));
    state_->acceptor.bind(ep);
    state_->acceptor.listen();
  } catch (const boost::system::system_error& e) {
    throw std::system_error(e.code().value(), std::system_category(), "cannot serve metrics on " + listen);
  }
  asio::co_spawn(io, accept_loop(state_), asio::detached);
}

MetricsServer::~MetricsServer() { close(); }

tcp::endpoint MetricsServer::local_endpoint() const { return state_->acceptor.local_endpoint(); }

void MetricsServer::close() {
  state_->closed = true;
  boost::system::error_code ignored;
  state_->acceptor.close(ignored);
}

}  // namespace flowrelay::control
