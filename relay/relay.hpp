#pragma once
// The relay: takes claimed flows from a source, dials their destinations through an Egress and moves
// bytes both ways until either side is done. Thread-safe entry points: release(), drain(),
// snapshot(), active(); adopt() runs on the reactor thread that owns the flow's socket.

#include "relay/egress.hpp"
#include "relay/flow_meta.hpp"
#include "relay/reactor.hpp"
#include "relay/tcp_flow.hpp"
#include "relay/udp_flow.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace flowrelay::relay {

struct RelayOptions {
  std::chrono::milliseconds tcp_idle_timeout{std::chrono::hours(1)};
  std::chrono::milliseconds udp_idle_timeout{std::chrono::seconds(60)};
  /// Per-direction high watermark; reading pauses above it and resumes at half of it.
  std::size_t flow_buffer_bytes = 256 * 1024;
  std::size_t max_flows = 65536;
  /// UDP flows among them: a budget of their own, so a source-port spray (every new port is a new
  /// UDP flow) cannot take the room TCP flows need.
  std::size_t max_udp_flows = 16384;
  /// Move bulk TCP bytes with splice(2) (socket -> pipe -> socket, Linux) instead of chunks when
  /// both sides are sockets.
  bool splice = false;
  /// Upstream sockets one UDP flow may open (one per destination it talks to).
  std::size_t udp_destinations_per_flow = 64;
};

/// One flow as seen from outside, with its counters.
struct FlowSnapshot {
  FlowMeta meta;
  std::uint64_t bytes_up = 0;    // app -> destination
  std::uint64_t bytes_down = 0;  // destination -> app
  std::uint64_t queued_up = 0;   // bytes read but not yet written, now
  std::uint64_t queued_down = 0;
  std::uint64_t queued_peak = 0;  // most bytes queued in one direction at any time
  std::uint64_t dropped = 0;      // UDP datagrams dropped (full socket, destination limit)
  std::string state;              // "connecting", "open", "closing", or why it closed
  // Where the time goes (TCP; `flows --json`): from adoption to the upstream connected, and to the
  // destination's first byte; the smoothed RTT the kernel measures on each leg now (TCP_INFO).
  std::string via;  // "direct" or an upstream's name once dialled; empty before
  std::optional<double> dial_ms;
  std::optional<double> first_byte_ms;
  std::optional<std::uint32_t> rtt_app_us;
  std::optional<std::uint32_t> rtt_upstream_us;
  double age_ms = 0;  // since adoption
};

/// Counters over the relay's life.
struct RelayCounters {
  std::uint64_t adopted = 0;
  std::uint64_t closed = 0;
  std::uint64_t dial_failures = 0;
  std::uint64_t rejected = 0;      // over max_flows or, for UDP, max_udp_flows
  std::uint64_t rejected_udp = 0;  // of those, UDP flows
  std::uint64_t buffer_waits = 0;  // reads put off because the buffer budget was spent
  std::uint64_t idle_expired = 0;
  std::uint64_t released = 0;
  std::uint64_t adopted_udp = 0;  // of adopted, UDP flows
};

/// Bytes and drops over the relay's life, flows still running included (for metrics).
struct RelayTraffic {
  std::uint64_t bytes_up = 0;    // app -> destination
  std::uint64_t bytes_down = 0;  // destination -> app
  std::uint64_t udp_dropped = 0;  // datagrams UDP flows dropped (full socket, destination limit)
  std::size_t active_tcp = 0;
  std::size_t active_udp = 0;
};

namespace detail {
class FlowBase;
}

class Relay {
 public:
  Relay(Reactor& reactor, Egress& egress, RelayOptions options = {});
  /// Releases flows still running (the reactor must still be running for them to go).
  ~Relay();
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  /// Takes over a claimed TCP flow running on `ex` (the reactor shard of its socket): dials
  /// meta.dst and relays. A failed dial resets the app's side. meta.id is assigned if zero.
  void adopt(std::unique_ptr<TcpFlow> app, FlowMeta meta, boost::asio::any_io_executor ex);

  /// Takes over a claimed UDP flow; the source feeds its datagrams to the returned association.
  /// Null when the relay is full.
  std::shared_ptr<UdpAssociation> adopt(std::unique_ptr<UdpFlow> app, FlowMeta meta,
                                        boost::asio::any_io_executor ex);

  /// Closes one flow (both sides reset). False if no such flow. Any thread.
  bool release(FlowId id, std::string reason);

  /// Waits until every flow has ended or the deadline passes, then releases the rest and waits for
  /// them to go. Call from a thread outside the reactor, after the sources stopped adopting.
  void drain(std::chrono::steady_clock::time_point deadline);

  std::vector<FlowSnapshot> snapshot() const;
  std::size_t active() const;
  RelayCounters counters() const;
  /// Any thread; walks the live flows (a scrape's cost, not a packet's).
  RelayTraffic traffic() const;

  /// Called on the flow's reactor thread as each flow ends (tests, the control plane's flow table).
  void on_closed(std::function<void(const FlowSnapshot&)> fn) { on_closed_ = std::move(fn); }

  FlowId next_id() noexcept { return next_id_.fetch_add(1, std::memory_order_relaxed); }
  /// A flow found no chunk to read into (the shard's buffer budget is spent) and waits.
  void note_buffer_wait() noexcept { buffer_waits_.fetch_add(1, std::memory_order_relaxed); }
  const RelayOptions& options() const noexcept { return options_; }
  Egress& egress() noexcept { return egress_; }

 private:
  friend class detail::FlowBase;
  bool admit(detail::FlowBase* f);
  void retire(detail::FlowBase* f);
  void sweep(std::size_t shard);

  Reactor& reactor_;
  Egress& egress_;
  RelayOptions options_;
  std::atomic<FlowId> next_id_{1};

  mutable std::mutex mu_;
  std::condition_variable drained_;
  std::unordered_map<FlowId, detail::FlowBase*> flows_;
  std::atomic<std::uint64_t> buffer_waits_{0};
  std::size_t udp_flows_ = 0;  // of flows_
  RelayCounters counters_;
  RelayTraffic closed_traffic_;  // of flows that have ended
  std::function<void(const FlowSnapshot&)> on_closed_;
  struct Sweepers;
  std::shared_ptr<Sweepers> sweepers_;
};

}  // namespace flowrelay::relay
