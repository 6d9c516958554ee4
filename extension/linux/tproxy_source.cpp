#include "extension/linux/tproxy_source.hpp"

#include "extension/linux/socket_address.hpp"
#include "extension/linux/tproxy_socket.hpp"
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
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>

#include <condition_variable>
#include <future>
#include <mutex>
#include <map>
#include <system_error>
#include <utility>

namespace flowrelay::linux_host {

namespace asio = boost::asio;
using asio::ip::tcp;
using asio::ip::udp;
using boost::system::error_code;

/// The accept and datagram loops still running: stop() returns once there are none, so no
/// loop touches an acceptor or socket the source is about to free.
struct TproxySource::Loops {
  std::mutex mu;
  std::condition_variable cv;
  int running = 0;
  void started() {
    std::lock_guard lk(mu);
    ++running;
  }
  void ended() {
    std::lock_guard lk(mu);
    if (--running == 0) cv.notify_all();
  }
  void wait() {
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return running == 0; });
  }
};

struct TproxySource::Stats {
  std::atomic<std::uint64_t> tcp_accepted{0};
  std::atomic<std::uint64_t> udp_associations{0};
  std::atomic<std::uint64_t> udp_datagrams{0};
  std::atomic<std::uint64_t> udp_dropped_full{0};
  std::atomic<std::uint64_t> udp_reply_socket_failed{0};
  std::atomic<std::uint64_t> not_diverted{0};
};

namespace {

std::shared_ptr<spdlog::logger> log() {
  static const auto l = relay::named_logger("tproxy");
  return l;
}

relay::EpochId epoch_now(const TproxySourceOptions& o) { return o.epoch ? o.epoch() : 0; }

/// A flow TPROXY handed over: its destination is elsewhere. The table never diverts flows to local
/// or loopback addresses, so a loopback destination means a direct connection to our socket.
bool diverted(const relay::Endpoint& dst) {
  return !dst.address.is_loopback() && !dst.address.is_unspecified() &&
         !(dst.address.is_v6() && dst.address.to_v6().is_v4_mapped() &&
           boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, dst.address.to_v6()).is_loopback());
}

using UdpKey = std::pair<relay::Endpoint, relay::Endpoint>;  // (app, original destination)

struct UdpAssocState;
using UdpTable = std::map<UdpKey, std::shared_ptr<UdpAssocState>>;

/// One claimed UDP flow's source-side state, shared by the table, the reply reader and the UdpFlow
/// the relay holds. The table and `assoc` form a cycle that closed() breaks.
struct UdpAssocState {
  UdpAssocState(asio::io_context& io, UdpKey k, std::weak_ptr<UdpTable> t)
      : reply(io), key(std::move(k)), table(std::move(t)) {}
  udp::socket reply;
  UdpKey key;
  std::weak_ptr<UdpTable> table;
  std::shared_ptr<relay::UdpAssociation> assoc;
  bool closed = false;

  void close() {
    if (closed) return;
    closed = true;
    error_code ignored;
    reply.close(ignored);
    auto keep = assoc;  // the relay may be calling us from inside the association
    assoc.reset();
    if (auto t = table.lock()) {
      auto it = t->find(key);
      if (it != t->end() && it->second.get() == this) t->erase(it);
    }
  }
};

class TproxyUdpFlow final : public relay::UdpFlow {
 public:
  explicit TproxyUdpFlow(std::shared_ptr<UdpAssocState> s) : s_(std::move(s)) {}
  bool send_to_app(const relay::Datagram& d) override {
    if (s_->closed) return false;
    error_code ec;
    s_->reply.send(d.payload.asio(), 0, ec);  // connected to the app, bound to the destination
    return !ec;
  }
  void closed() override { s_->close(); }

 private:
  std::shared_ptr<UdpAssocState> s_;
};

void adopt_diverted(tcp::socket socket, const tcp::endpoint& remote, relay::Relay& relay,
                    const TproxySourceOptions& options, TproxySource::Stats& stats) {
  relay::FlowMeta meta;
  meta.proto = relay::Proto::tcp;
  meta.app = {remote.address(), remote.port()};
  meta.dst = original_destination(socket.native_handle());
  if (!diverted(meta.dst)) {
    // Someone connected to the listener itself: relaying it would dial the listener again, and
    // again. Only flows TPROXY diverted (destination elsewhere) are relayed.
    stats.not_diverted.fetch_add(1, std::memory_order_relaxed);
    error_code ignored;
    socket.close(ignored);
    return;
  }
  meta.epoch = epoch_now(options);
  meta.claimed_at = std::chrono::system_clock::now();
  stats.tcp_accepted.fetch_add(1, std::memory_order_relaxed);
  auto ex = socket.get_executor();
  relay.adopt(std::make_unique<relay::SocketTcpFlow>(std::move(socket)), std::move(meta), ex);
}

/// The app's later datagrams of one flow, which TPROXY delivers to its reply socket.
asio::awaitable<void> reply_loop(std::shared_ptr<UdpAssocState> s, std::shared_ptr<TproxySource::Stats> stats_ptr) {
  auto& stats = *stats_ptr;  // the association outlives the source: so do the counters it bumps
  for (;;) {
    auto [ec] = co_await s->reply.async_wait(asio::socket_base::wait_read, asio::as_tuple(asio::use_awaitable));
    if (ec || s->closed) co_return;
    for (int count = 0; count < relay::kDatagramsPerWake; ++count) {
      auto chunk = relay::take_datagram_chunk(s->reply.native_handle());
      if (!chunk) continue;
      error_code rec;
      const std::size_t n = s->reply.receive(chunk.asio_mutable(), 0, rec);
      if (rec == asio::error::would_block || rec == asio::error::try_again) break;
      if (s->closed) co_return;
      if (rec) {
        if (rec == asio::error::connection_refused) continue;  // ICMP from the app's side: ignore
        co_return;
      }
      chunk.truncate(n);
      stats.udp_datagrams.fetch_add(1, std::memory_order_relaxed);
      if (s->assoc) s->assoc->from_app(relay::Datagram{std::move(chunk), s->key.second});
    }
  }
}

}  // namespace

struct TproxySource::TcpShard {
  explicit TcpShard(asio::io_context& io) : acceptor(io) {}
  tcp::acceptor acceptor;
};

struct TproxySource::UdpShard {
  UdpShard(asio::io_context& io) : io(io), socket(io), table(std::make_shared<UdpTable>()) {}
  asio::io_context& io;
  udp::socket socket;
  std::shared_ptr<UdpTable> table;
};

namespace {

asio::awaitable<void> datagram_loop(TproxySource::UdpShard& shard, relay::Relay& relay,
                                    const TproxySourceOptions& options, std::shared_ptr<TproxySource::Stats> stats_ptr) {
  auto& stats = *stats_ptr;
  auto ex = co_await asio::this_coro::executor;
  udp::socket& socket = shard.socket;
  for (;;) {
    auto [ec] = co_await socket.async_wait(asio::socket_base::wait_read, asio::as_tuple(asio::use_awaitable));
    if (ec || !socket.is_open()) co_return;
    for (int count = 0; count < relay::kDatagramsPerWake; ++count) {
      auto chunk = relay::take_datagram_chunk(socket.native_handle());
      if (!chunk) continue;
      error_code rec;
      auto d = recv_with_original_dst(socket.native_handle(),
                                      std::span<std::byte>(chunk.mutable_data(), chunk.size()), rec, MSG_DONTWAIT);
      if (!d) {
        if (rec == asio::error::would_block || rec == asio::error::try_again) break;
        if (!socket.is_open()) co_return;
        continue;
      }
      chunk.truncate(d->length);
      stats.udp_datagrams.fetch_add(1, std::memory_order_relaxed);
      if (!diverted(d->original_dst)) {  // sent to the socket itself, not diverted: never relay
        stats.not_diverted.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      UdpKey key{d->source, d->original_dst};
      auto it = shard.table->find(key);
      if (it == shard.table->end()) {
        if (shard.table->size() >= options.max_udp_associations) {
          stats.udp_dropped_full.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        error_code bec;
        UniqueFd fd = open_udp_reply_socket(d->original_dst, d->source, bec);
        if (!fd) {
          // Another socket (not one of our SO_REUSEPORT group) holds the destination address here:
          // count, drop.
          stats.udp_reply_socket_failed.fetch_add(1, std::memory_order_relaxed);
          static relay::LogLimiter limit(10);
          if (std::uint64_t held = 0; limit.allow(held))
            log()->warn("udp {} -> {}: reply socket: {}; datagram dropped ({} more like it not logged)",
                        d->source.to_string(), d->original_dst.to_string(), bec.message(), held);
          continue;
        }
        if (options.reply_mark != 0) set_socket_mark(fd.get(), options.reply_mark);
        auto state = std::make_shared<UdpAssocState>(shard.io, key, shard.table);
        const auto proto = d->original_dst.address.is_v4() ? udp::v4() : udp::v6();
        error_code aec;
        state->reply.assign(proto, fd.get(), aec);
        if (aec) {  // the descriptor stays with `fd`, which closes it
          stats.udp_reply_socket_failed.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        (void)fd.release();
        state->reply.non_blocking(true, aec);
        relay::FlowMeta meta;
        meta.proto = relay::Proto::udp;
        meta.app = d->source;
        meta.dst = d->original_dst;
        meta.epoch = epoch_now(options);
        meta.claimed_at = std::chrono::system_clock::now();
        auto assoc = relay.adopt(std::make_unique<TproxyUdpFlow>(state), std::move(meta), ex);
        if (!assoc) {
          stats.udp_dropped_full.fetch_add(1, std::memory_order_relaxed);
          state->close();
          continue;
        }
        state->assoc = std::move(assoc);
        stats.udp_associations.fetch_add(1, std::memory_order_relaxed);
        it = shard.table->emplace(key, state).first;
        asio::co_spawn(ex, reply_loop(state, stats_ptr), asio::detached);
      }
      if (auto a = it->second->assoc) a->from_app(relay::Datagram{std::move(chunk), key.second});
    }
  }
}

}  // namespace

TproxySource::TproxySource(relay::Reactor& reactor, relay::Relay& relay, TproxySourceOptions options)
    : reactor_(reactor),
      relay_(relay),
      options_(std::move(options)),
      stats_(std::make_shared<Stats>()),
      loops_(std::make_shared<Loops>()) {}

TproxySource::~TproxySource() { stop(); }

void TproxySource::start() {
  using boost::asio::ip::make_address;
  struct Family {
    const char* addr;
    bool v6;
  };
  std::size_t udp_shard = 0;
  for (Family f : {Family{"127.0.0.1", false}, Family{"::1", true}}) {
    if (f.v6 && !options_.ipv6) continue;
    const relay::Endpoint ep{make_address(f.addr), options_.port};
    UniqueFd listener, dgram;
    try {
      listener = open_tproxy_tcp_listener(ep);
      dgram = open_tproxy_udp_socket(ep);
    } catch (const std::system_error& e) {
      if (!f.v6) throw;
      log()->warn("IPv6 transparent sockets unavailable ({}): claiming IPv4 only", e.what());
      continue;
    }
    // One acceptor, on shard 0; Reactor::place() spreads the flows once there is parallel work.
    auto shard = std::make_unique<TcpShard>(reactor_.context(0));
    shard->acceptor.assign(f.v6 ? tcp::v6() : tcp::v4(), listener.release());
    tcp_.push_back(std::move(shard));
    auto u = std::make_unique<UdpShard>(reactor_.context(udp_shard++ % reactor_.size()));
    u->socket.assign(f.v6 ? udp::v6() : udp::v4(), dgram.release());
    u->socket.non_blocking(true);
    udp_.push_back(std::move(u));
    if (f.v6) ipv6_active_ = true;
  }
  auto ended = [loops = loops_](const std::exception_ptr&) { loops->ended(); };
  for (auto& s : tcp_) {
    loops_->started();
    asio::co_spawn(s->acceptor.get_executor(),
                   relay::accept_loop(s->acceptor,
                                      [this](tcp::socket socket, const tcp::endpoint& remote) {
                                        relay::place_accepted(reactor_, 0, std::move(socket), remote,
                                                              [&relay = relay_, &options = options_, stats = stats_](
                                                                  tcp::socket s, const tcp::endpoint& r) {
                                                                adopt_diverted(std::move(s), r, relay, options, *stats);
                                                              });
                                      }),
                   ended);
  }
  for (auto& s : udp_) {
    loops_->started();
    asio::co_spawn(s->io, datagram_loop(*s, relay_, options_, stats_), ended);
  }
  log()->info("claiming through TPROXY on 127.0.0.1:{}{} ({} threads)", options_.port,
              ipv6_active_ ? " and [::1]" : "", reactor_.size());
}

void TproxySource::stop() {
  auto close_all = [this](asio::io_context* only) {
    error_code ignored;
    for (auto& s : tcp_)
      if (only == nullptr || &s->acceptor.get_executor().context() == only) s->acceptor.close(ignored);
    for (auto& s : udp_)
      if (only == nullptr || &s->io == only) s->socket.close(ignored);
  };
  if (!reactor_.running()) {
    close_all(nullptr);
    return;
  }
  for (std::size_t i = 0; i < reactor_.size(); ++i) {
    std::promise<void> done;
    asio::post(reactor_.context(i), [&] {
      close_all(&reactor_.context(i));
      done.set_value();
    });
    done.get_future().wait();
  }
  // Each closed socket's pending wait completes on its shard's next turn and its loop returns.
  loops_->wait();
}

TproxySourceCounters TproxySource::counters() const {
  TproxySourceCounters c;
  c.tcp_accepted = stats_->tcp_accepted.load();
  c.udp_associations = stats_->udp_associations.load();
  c.udp_datagrams = stats_->udp_datagrams.load();
  c.udp_dropped_full = stats_->udp_dropped_full.load();
  c.udp_reply_socket_failed = stats_->udp_reply_socket_failed.load();
  c.not_diverted = stats_->not_diverted.load();
  return c;
}

}  // namespace flowrelay::linux_host
