// The UDP bridge: one association per claimed UDP flow, one connected upstream socket per
// destination the app talks to. A connected socket only hears its own destination, so every reply
// carries the right source endpoint without a lookup. Datagrams are never queued in userspace: a
// full socket drops (and counts) them, as the network would.

#include "relay/detail/bridges.hpp"
#include "relay/detail/flow_base.hpp"
#include "relay/log.hpp"
#include "relay/datagram_chunk.hpp"
#include "relay/relay.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <spdlog/spdlog.h>


namespace flowrelay::relay {
namespace detail {

namespace asio = boost::asio;
using boost::system::error_code;


class UdpBridge final : public FlowBase, public UdpAssociation {
 public:
  UdpBridge(Relay& relay, FlowMeta meta, asio::any_io_executor ex, std::unique_ptr<UdpFlow> app)
      : FlowBase(relay, std::move(meta), std::move(ex)), app_(std::move(app)) {
    set_open();
  }

  FlowId id() const noexcept override { return meta_.id; }

  void from_app(Datagram d) override {
    if (closing()) return;
    touch();
    Upstream* up = upstream_for(d.peer);
    if (up == nullptr) {
      add(dropped_, 1);
      return;
    }
    error_code ec;
    up->socket.send(d.payload.asio(), 0, ec);
    if (ec) {
      add(dropped_, 1);  // full socket or ICMP error pending: UDP may drop
      return;
    }
    add(bytes_up_, d.payload.size());
  }

  void close(std::string reason) override {
    if (!begin_closing(std::move(reason))) return;
    auto keep = self_;  // the source may drop its reference in closed()
    for (auto& up : upstreams_) {
      error_code ignored;
      up->socket.close(ignored);
    }
    app_->closed();
    if (readers_ == 0) retire();
  }

  void destroy() override { self_.reset(); }

  std::shared_ptr<UdpBridge> self_;  // held while registered with the relay

 private:
  struct Upstream {
    Endpoint dst;
    asio::ip::udp::socket socket;
  };

  Upstream* upstream_for(const Endpoint& dst) {
    for (auto& up : upstreams_)
      if (up->dst == dst) return up.get();
    if (upstreams_.size() >= relay_.options().udp_destinations_per_flow) return nullptr;
    auto up = std::make_unique<Upstream>(Upstream{dst, asio::ip::udp::socket(ex_)});
    if (error_code ec = relay_.egress().open_udp(up->socket, dst)) {
      static LogLimiter limit(20);
      if (std::uint64_t held = 0; limit.allow(held))
        relay_log()->info("flow {} epoch {}: udp to {} failed: {} ({} more not logged)", meta_.id, meta_.epoch,
                          dst.to_string(), ec.message(), held);
      return nullptr;
    }
    Upstream* raw = up.get();
    upstreams_.push_back(std::move(up));
    ++readers_;
    asio::co_spawn(ex_, read_replies(*raw), [this, keep = self_](std::exception_ptr) {
      if (--readers_ == 0 && closing()) retire();
    });
    return raw;
  }

  // Replies from one destination: wait with no chunk held, then read each pending datagram into a
  // 64 KiB chunk and hand it to the app; the chunk is back in the pool when send_to_app returns.
  asio::awaitable<void> read_replies(Upstream& up) {
    for (;;) {
      auto [ec] = co_await up.socket.async_wait(asio::socket_base::wait_read, asio::as_tuple(asio::use_awaitable));
      if (ec || closing()) co_return;
      // At most kDatagramsPerWake per wake-up: a flood must not starve the shard's other flows.
      for (int count = 0; count < kDatagramsPerWake; ++count) {
        auto chunk = take_datagram_chunk(up.socket.native_handle());
        if (!chunk) {
          add(dropped_, 1);
          continue;
        }
        const std::size_t n = up.socket.receive(chunk.asio_mutable(), 0, ec);
        if (ec == asio::error::would_block || ec == asio::error::try_again) break;
        if (ec) {
          if (!up.socket.is_open()) co_return;
          continue;  // e.g. ECONNREFUSED from an ICMP error: the association lives on
        }
        chunk.truncate(n);
        touch();
        if (app_->send_to_app(Datagram{std::move(chunk), up.dst}))
          add(bytes_down_, n);
        else
          add(dropped_, 1);
      }
    }
  }

  std::unique_ptr<UdpFlow> app_;
  std::vector<std::unique_ptr<Upstream>> upstreams_;
  int readers_ = 0;
};

std::shared_ptr<UdpAssociation> start_udp_bridge(Relay& relay, FlowMeta meta, asio::any_io_executor ex,
                                                 std::unique_ptr<UdpFlow> app) {
  auto bridge = std::make_shared<UdpBridge>(relay, std::move(meta), std::move(ex), std::move(app));
  bridge->self_ = bridge;
  if (!bridge->admit()) {
    bridge->self_.reset();
    return nullptr;
  }
  return bridge;
}

}  // namespace detail
}  // namespace flowrelay::relay
