#pragma once
// The relay as the provider runs it, for tests that take simulated NE flows end to end: reactor
// shards with their ports, a direct egress, the relay; flows are adopted on a shard, as
// ProviderCore does.

#include "extension/apple/ne_tcp_flow.hpp"
#include "extension/apple/ne_udp_flow.hpp"
#include "extension/apple/reactor_port.hpp"
#include "relay/egress.hpp"
#include "relay/reactor.hpp"
#include "tests/apple/ne_sim.hpp"
#include "relay/relay.hpp"

#include <boost/asio/post.hpp>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <future>
#include <memory>
#include <vector>

namespace flowrelay::apple::sim {

class RelayRig {
 public:
  explicit RelayRig(std::size_t shards = 2, relay::RelayOptions options = {})
      : reactor_(shards), egress_({std::chrono::milliseconds(2000), 0}), relay_(reactor_, egress_, options) {
    for (std::size_t i = 0; i < reactor_.size(); ++i) ports_.push_back(std::make_shared<ReactorPort>(reactor_.context(i)));
    relay_.on_closed([this](const relay::FlowSnapshot& s) {
      {
        std::lock_guard lk(mu_);
        ++closed_;
        last_closed_.push_back(s);
      }
      cv_.notify_all();
    });
    reactor_.start();
  }
  ~RelayRig() {
    relay_.drain(std::chrono::steady_clock::now());
    Deliverer::quiesce_all();  // completions still queued may hold chunks of this reactor's pool
    reactor_.stop();
    for (auto& p : ports_) p->shut();
  }

  relay::Relay& relay() { return relay_; }
  relay::Reactor& reactor() { return reactor_; }

  void adopt_tcp(std::unique_ptr<NeTcpFlowOps> ops, relay::Endpoint dst) {
    auto& port = next_port();
    const auto watermark = relay_.options().flow_buffer_bytes;
    boost::asio::post(port->context(), [this, port, watermark, dst, ops = std::move(ops)]() mutable {
      relay::FlowMeta meta;
      meta.proto = relay::Proto::tcp;
      meta.dst = dst;
      relay_.adopt(std::make_unique<NeTcpFlow>(port, std::move(ops), watermark), meta, port->context().get_executor());
    });
  }

  void adopt_udp(std::unique_ptr<NeUdpFlowOps> ops, relay::Endpoint first_dst) {
    auto& port = next_port();
    const auto watermark = relay_.options().flow_buffer_bytes;
    boost::asio::post(port->context(), [this, port, watermark, first_dst, ops = std::move(ops)]() mutable {
      relay::FlowMeta meta;
      meta.proto = relay::Proto::udp;
      meta.dst = first_dst;
      auto flow = std::make_unique<NeUdpFlow>(port, relay_, std::move(ops), watermark);
      NeUdpFlow* raw = flow.get();
      if (auto assoc = relay_.adopt(std::move(flow), meta, port->context().get_executor())) raw->start(assoc, assoc->id());
    });
  }

  /// Waits until `n` flows have ended on their own (no release, no drain).
  bool wait_closed(std::size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, timeout, [&] { return closed_ >= n; });
  }
  /// What the ended flows looked like as they ended, in order.
  std::vector<relay::FlowSnapshot> closed_flows() {
    std::lock_guard lk(mu_);
    return last_closed_;
  }

  /// Live chunks and control blocks over every shard's pool.
  std::int64_t pool_live() const {
    std::int64_t n = 0;
    for (const auto& c : reactor_.pool_stats().classes) n += c.live;
    return n;
  }

 private:
  const std::shared_ptr<ReactorPort>& next_port() { return ports_[next_.fetch_add(1) % ports_.size()]; }

  std::mutex mu_;  // first: on_closed may run until the relay is gone
  std::condition_variable cv_;
  std::size_t closed_ = 0;
  std::vector<relay::FlowSnapshot> last_closed_;
  relay::Reactor reactor_;
  relay::DirectEgress egress_;
  relay::Relay relay_;
  std::vector<std::shared_ptr<ReactorPort>> ports_;
  std::atomic<std::size_t> next_{0};
};

}  // namespace flowrelay::apple::sim
