#include "extension/forward/forward_source.hpp"

#include "relay/accept_loop.hpp"
#include "relay/datagram_chunk.hpp"
#include "relay/log.hpp"
#include "relay/socket_tcp_flow.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <future>
#include <sys/socket.h>
#include <system_error>
#include <type_traits>
#include <unordered_map>

namespace flowrelay::forward {

namespace asio = boost::asio;
using asio::ip::tcp;
using asio::ip::udp;
using boost::system::error_code;

namespace {

std::shared_ptr<spdlog::logger> log() {
  static const auto l = relay::named_logger("forward");
  return l;
}

relay::Endpoint from_asio(const auto& ep) { return {ep.address(), ep.port()}; }


}  // namespace

// One shard's listener. Shared with the UDP flows it adopted (weakly), so a reply after stop()
// finds a closed socket rather than a freed one.
struct ForwardSource::Shard {
  Shard(asio::io_context& io) : io(io), acceptor(io), socket(io) {}

  asio::io_context& io;
  tcp::acceptor acceptor;
  udp::socket socket;
  std::unordered_map<udp::endpoint, std::shared_ptr<relay::UdpAssociation>> associations;
  bool looping = false;
  std::promise<void> loop_done;  // set when the accept or datagram loop has returned
};

namespace {

// A forwarded UDP peer: replies go back out of the shard's listening socket.
template <typename Shard>
class ForwardUdpFlow final : public relay::UdpFlow {
 public:
  ForwardUdpFlow(std::weak_ptr<Shard> shard, udp::endpoint peer) : shard_(std::move(shard)), peer_(peer) {}

  bool send_to_app(const relay::Datagram& d) override {
    auto shard = shard_.lock();
    if (!shard) return false;
    error_code ec;
    shard->socket.send_to(d.payload.asio(), peer_, 0, ec);
    return !ec;
  }
  void closed() override {
    if (auto shard = shard_.lock()) shard->associations.erase(peer_);
  }

 private:
  std::weak_ptr<Shard> shard_;
  udp::endpoint peer_;
};

void adopt_forwarded(tcp::socket socket, const tcp::endpoint& remote, relay::Relay& relay, const relay::Endpoint& to) {
  relay::FlowMeta meta;
  meta.proto = relay::Proto::tcp;
  meta.app = from_asio(remote);
  meta.dst = to;
  meta.claimed_at = std::chrono::system_clock::now();
  auto ex = socket.get_executor();
  relay.adopt(std::make_unique<relay::SocketTcpFlow>(std::move(socket)), std::move(meta), ex);
}

template <typename Shard>
asio::awaitable<void> datagram_loop(std::shared_ptr<Shard> shard, relay::Relay& relay, relay::Endpoint to) {
  auto ex = co_await asio::this_coro::executor;
  udp::socket& socket = shard->socket;
  auto& table = shard->associations;
  for (;;) {
    auto [ec] = co_await socket.async_wait(asio::socket_base::wait_read, asio::as_tuple(asio::use_awaitable));
    if (ec || !socket.is_open()) co_return;
    for (int count = 0; count < relay::kDatagramsPerWake; ++count) {
      auto chunk = relay::take_datagram_chunk(socket.native_handle());
      if (!chunk) continue;
      udp::endpoint peer;
      const std::size_t n = socket.receive_from(chunk.asio_mutable(), peer, 0, ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) break;
      if (ec) {
        if (!socket.is_open()) co_return;
        continue;
      }
      chunk.truncate(n);
      auto it = table.find(peer);
      if (it == table.end()) {
        relay::FlowMeta meta;
        meta.proto = relay::Proto::udp;
        meta.app = from_asio(peer);
        meta.dst = to;
        meta.claimed_at = std::chrono::system_clock::now();
        auto assoc = relay.adopt(std::make_unique<ForwardUdpFlow<Shard>>(shard, peer), std::move(meta), ex);
        if (!assoc) continue;  // relay full: drop, as the network would
        it = table.emplace(peer, std::move(assoc)).first;
      }
      it->second->from_app(relay::Datagram{std::move(chunk), to});
    }
  }
}

/// Binds one shard's socket; the shards share the port through SO_REUSEPORT, whose group the
/// kernel keeps to one user. No SO_REUSEADDR on UDP: with it on both sides any user could bind the
/// same address and take the datagrams (DESIGN.md, "Security model"). TCP keeps it so a restart
/// need not wait out TIME_WAIT: Linux lets no other socket bind a listening TCP port.
template <typename Socket>
void bind_reuseport(Socket& s, const typename Socket::endpoint_type& ep) {
  s.open(ep.protocol());
  if constexpr (std::is_same_v<Socket, tcp::acceptor>) s.set_option(asio::socket_base::reuse_address(true));
  int one = 1;
  if (::setsockopt(s.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
    throw std::system_error(errno, std::system_category(), "SO_REUSEPORT");
  s.bind(ep);
}

}  // namespace

ForwardSource::ForwardSource(relay::Reactor& reactor, relay::Relay& relay, ForwardOptions options)
    : reactor_(reactor), relay_(relay), options_(std::move(options)), bound_(options_.listen) {}

ForwardSource::~ForwardSource() { stop(); }

void ForwardSource::start() {
  // UDP: a socket per shard, the kernel hashing each peer to one of them. TCP: one listener, on
  // shard 0, whose accepts Reactor::place() keeps there or hands to the least loaded shard.
  const std::size_t listeners = options_.udp ? reactor_.size() : 1;
  for (std::size_t i = 0; i < listeners; ++i) {
    auto shard = std::make_shared<Shard>(reactor_.context(i));
    try {
      if (options_.udp) {
        bind_reuseport(shard->socket, udp::endpoint(bound_.address, bound_.port));
        shard->socket.non_blocking(true);
        if (bound_.port == 0) bound_.port = shard->socket.local_endpoint().port();
      } else {
        bind_reuseport(shard->acceptor, tcp::endpoint(bound_.address, bound_.port));
        shard->acceptor.listen(asio::socket_base::max_listen_connections);
        if (bound_.port == 0) bound_.port = shard->acceptor.local_endpoint().port();
      }
    } catch (const boost::system::system_error& e) {
      throw std::system_error(e.code().value(), std::system_category(),
                              "cannot listen on " + bound_.to_string() + (options_.udp ? " (udp)" : " (tcp)"));
    }
    shards_.push_back(std::move(shard));
  }
  for (auto& shard : shards_) {
    auto done = [s = shard.get()](std::exception_ptr e) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& x) {
          log()->error("{} loop ended: {}", s->socket.is_open() ? "datagram" : "accept", x.what());
        }
      }
      s->loop_done.set_value();
    };
    shard->looping = true;
    if (options_.udp)
      asio::co_spawn(shard->io, datagram_loop(shard, relay_, options_.to), done);
    else
      asio::co_spawn(shard->io,
                     relay::accept_loop(shard->acceptor,
                                        [this](tcp::socket socket, const tcp::endpoint& remote) {
                                          relay::place_accepted(reactor_, 0, std::move(socket), remote,
                                                                [&relay = relay_, to = options_.to](tcp::socket s, const tcp::endpoint& r) {
                                                                  adopt_forwarded(std::move(s), r, relay, to);
                                                                });
                                        }),
                     done);
  }
  log()->info("forwarding {} {} -> {} on {} threads", options_.udp ? "udp" : "tcp", bound_.to_string(),
              options_.to.to_string(), reactor_.size());
}

void ForwardSource::stop() {
  for (auto& shard : shards_) {
    auto close = [s = shard.get()] {
      error_code ignored;
      s->acceptor.close(ignored);
      s->socket.close(ignored);
    };
    if (!reactor_.running()) {
      close();
      continue;
    }
    asio::post(shard->io, close);
    // The loop sees its socket closed on its next turn (an accept back-off may delay that by up
    // to 100 ms); after that nothing of this source runs on the reactor but its UDP flows, which
    // hold the shard weakly.
    if (shard->looping) {
      shard->looping = false;
      shard->loop_done.get_future().wait();
    }
  }
  // Connections handed to other shards before the loops ended are adopted before stop() returns.
  if (!options_.udp && reactor_.running())
    for (std::size_t i = 1; i < reactor_.size(); ++i) {
      std::promise<void> adopted;
      asio::post(reactor_.context(i), [&adopted] { adopted.set_value(); });
      adopted.get_future().wait();
    }
}

}  // namespace flowrelay::forward
