#include "relay/proxy_egress.hpp"

#include "relay/detail/dial.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <cstring>

namespace flowrelay::relay {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

class ProxyCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "proxy"; }
  std::string message(int e) const override {
    switch (static_cast<ProxyError>(e)) {
      case ProxyError::bad_reply: return "upstream proxy: unexpected reply";
      case ProxyError::auth_required: return "upstream proxy: authentication required";
      case ProxyError::auth_failed: return "upstream proxy: authentication failed";
      case ProxyError::refused: return "upstream proxy: CONNECT refused";
      case ProxyError::ambiguous: return "upstream unknown: a rule on uids that names another upstream may match this flow";
    }
    return "upstream proxy: error";
  }
};

std::string base64(std::string_view in) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kAlphabet[(acc >> bits) & 0x3f];
    }
  }
  if (bits > 0) out += kAlphabet[(acc << (6 - bits)) & 0x3f];
  while (out.size() % 4 != 0) out += '=';
  return out;
}

/// "host:port" for a CONNECT line: the hostname when the flow source knows it.
std::string authority(const FlowMeta& meta) {
  if (!meta.hostname.empty()) return meta.hostname + ":" + std::to_string(meta.dst.port);
  return meta.dst.to_string();
}

asio::awaitable<error_code> write_all(tcp::socket& s, const void* data, std::size_t n) {
  auto [ec, w] = co_await asio::async_write(s, asio::buffer(data, n), asio::as_tuple(asio::use_awaitable));
  co_return ec;
}
asio::awaitable<error_code> read_exactly(tcp::socket& s, void* data, std::size_t n) {
  auto [ec, r] = co_await asio::async_read(s, asio::buffer(data, n), asio::as_tuple(asio::use_awaitable));
  co_return ec;
}

// RFC 1928 (and RFC 1929 for a username): greeting, optional sub-negotiation, CONNECT, reply.
asio::awaitable<error_code> socks5_handshake(tcp::socket& s, const FlowMeta& meta, const ProxyEgressOptions& o) {
  std::array<std::uint8_t, 300> b{};
  const std::uint8_t greeting_none[] = {5, 1, 0};
  const std::uint8_t greeting_user[] = {5, 2, 0, 2};
  if (auto ec = o.credentials ? co_await write_all(s, greeting_user, sizeof greeting_user)
                              : co_await write_all(s, greeting_none, sizeof greeting_none))
    co_return ec;
  if (auto ec = co_await read_exactly(s, b.data(), 2)) co_return ec;
  if (b[0] != 5) co_return make_error_code(ProxyError::bad_reply);
  if (b[1] == 0xff) co_return make_error_code(ProxyError::auth_required);
  if (b[1] == 2) {
    if (!o.credentials) co_return make_error_code(ProxyError::auth_required);
    const auto& [user, pass] = *o.credentials;
    if (user.size() > 255 || pass.size() > 255) co_return make_error_code(ProxyError::auth_failed);
    std::string m;
    m += char(1);
    m += char(user.size());
    m += user;
    m += char(pass.size());
    m += pass;
    if (auto ec = co_await write_all(s, m.data(), m.size())) co_return ec;
    if (auto ec = co_await read_exactly(s, b.data(), 2)) co_return ec;
    if (b[1] != 0) co_return make_error_code(ProxyError::auth_failed);
  } else if (b[1] != 0) {
    co_return make_error_code(ProxyError::bad_reply);
  }
  // CONNECT: the hostname where the flow source knows it, else the original address.
  std::size_t n = 0;
  b[n++] = 5, b[n++] = 1, b[n++] = 0;
  if (!meta.hostname.empty() && meta.hostname.size() <= 255) {
    b[n++] = 3;
    b[n++] = std::uint8_t(meta.hostname.size());
    std::memcpy(&b[n], meta.hostname.data(), meta.hostname.size());
    n += meta.hostname.size();
  } else if (meta.dst.address.is_v4()) {
    b[n++] = 1;
    const auto a = meta.dst.address.to_v4().to_bytes();
    std::memcpy(&b[n], a.data(), a.size());
    n += a.size();
  } else {
    b[n++] = 4;
    const auto a = meta.dst.address.to_v6().to_bytes();
    std::memcpy(&b[n], a.data(), a.size());
    n += a.size();
  }
  b[n++] = std::uint8_t(meta.dst.port >> 8);
  b[n++] = std::uint8_t(meta.dst.port & 0xff);
  if (auto ec = co_await write_all(s, b.data(), n)) co_return ec;
  // Reply: VER REP RSV ATYP BND.ADDR BND.PORT.
  if (auto ec = co_await read_exactly(s, b.data(), 4)) co_return ec;
  if (b[0] != 5) co_return make_error_code(ProxyError::bad_reply);
  const std::uint8_t rep = b[1];
  std::size_t rest = 0;
  switch (b[3]) {
    case 1: rest = 4 + 2; break;
    case 4: rest = 16 + 2; break;
    case 3:
      if (auto ec = co_await read_exactly(s, b.data(), 1)) co_return ec;
      rest = std::size_t(b[0]) + 2;
      break;
    default: co_return make_error_code(ProxyError::bad_reply);
  }
  if (auto ec = co_await read_exactly(s, b.data(), rest)) co_return ec;
  switch (rep) {
    case 0: co_return error_code{};
    case 3: co_return make_error_code(asio::error::network_unreachable);
    case 4: co_return make_error_code(asio::error::host_unreachable);
    case 5: co_return make_error_code(asio::error::connection_refused);
    default: co_return make_error_code(ProxyError::refused);
  }
}

// RFC 9110 CONNECT. The response head is consumed exactly: a byte after it belongs to the app.
asio::awaitable<error_code> http_handshake(tcp::socket& s, const FlowMeta& meta, const ProxyEgressOptions& o) {
  const std::string target = authority(meta);
  std::string req = "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n";
  if (o.credentials) req += "Proxy-Authorization: Basic " + base64(o.credentials->first + ":" + o.credentials->second) + "\r\n";
  req += "\r\n";
  if (auto ec = co_await write_all(s, req.data(), req.size())) co_return ec;
  std::string head;
  std::array<char, 2048> peek{};
  constexpr std::size_t kMaxHead = 16 * 1024;
  for (;;) {
    auto [ec, n] = co_await s.async_receive(asio::buffer(peek), asio::socket_base::message_peek,
                                           asio::as_tuple(asio::use_awaitable));
    if (ec) co_return ec;
    if (n == 0) co_return make_error_code(asio::error::eof);
    const std::string seen = head + std::string(peek.data(), n);
    const auto end = seen.find("\r\n\r\n");
    const std::size_t take = end == std::string::npos ? n : end + 4 - head.size();
    if (auto rec = co_await read_exactly(s, peek.data(), take)) co_return rec;  // consume only the head
    head.append(peek.data(), take);
    if (end != std::string::npos) break;
    if (head.size() > kMaxHead) co_return make_error_code(ProxyError::bad_reply);
  }
  // "HTTP/1.1 200 Connection established"
  if (head.size() < 12 || head.compare(0, 5, "HTTP/") != 0) co_return make_error_code(ProxyError::bad_reply);
  const auto sp = head.find(' ');
  const int status = sp == std::string::npos ? 0 : std::atoi(head.c_str() + sp + 1);
  if (status / 100 == 2) co_return error_code{};
  if (status == 407) co_return make_error_code(o.credentials ? ProxyError::auth_failed : ProxyError::auth_required);
  co_return make_error_code(ProxyError::refused);
}

}  // namespace

const boost::system::error_category& proxy_category() noexcept {
  static const ProxyCategory c;
  return c;
}

error_code make_error_code(ProxyError e) noexcept { return {static_cast<int>(e), proxy_category()}; }

std::optional<ProxyEgressOptions> parse_proxy_url(std::string_view url) {
  ProxyEgressOptions o;
  if (url.starts_with("socks5://")) {
    o.kind = ProxyEgressOptions::Kind::socks5;
    url.remove_prefix(9);
  } else if (url.starts_with("http://")) {
    o.kind = ProxyEgressOptions::Kind::http;
    url.remove_prefix(7);
  } else {
    return std::nullopt;
  }
  if (url.ends_with('/')) url.remove_suffix(1);
  o.name = (o.kind == ProxyEgressOptions::Kind::socks5 ? "socks5://" : "http://") + std::string(url);
  const auto ep = parse_endpoint(url);
  if (!ep || ep->port == 0) return std::nullopt;
  o.proxy = *ep;
  return o;
}

asio::awaitable<DialResult> ProxyEgress::dial_tcp(const FlowMeta& meta, asio::any_io_executor ex) {
  const detail::Handshake handshake = [this, &meta](tcp::socket& s) {
    return options_.kind == ProxyEgressOptions::Kind::socks5 ? socks5_handshake(s, meta, options_)
                                                             : http_handshake(s, meta, options_);
  };
  co_return co_await detail::dial_socket(tcp::endpoint(options_.proxy.address, options_.proxy.port),
                                         options_.connect_timeout, options_.mark, std::move(ex), via_, handshake);
}

error_code ProxyEgress::open_udp(asio::ip::udp::socket&, const Endpoint&) {
  return make_error_code(asio::error::operation_not_supported);  // SOCKS5 UDP ASSOCIATE: not built yet
}

}  // namespace flowrelay::relay
