#pragma once
// The Linux transparent flow source: flows nftables diverted with TPROXY, handed to the relay.
//
// TCP: one transparent listener per family (127.0.0.1:P, [::1]:P); every reactor shard accepts on
//      its own dup of it, so connections spread over the shards with no handoff. The accepted
//      socket's local address is the app's original destination.
// UDP: one transparent socket per family, each read on one shard. An association per (app
//      endpoint, original destination), bounded in number; it answers the app from a transparent
//      reply socket bound to the original destination and connected to the app. TPROXY then
//      delivers the flow's later datagrams to that reply socket, so it is read as well. The relay's
//      UDP idle timeout ends an association (UdpFlow::closed), which closes the reply socket.

#include "relay/flow_meta.hpp"
#include "relay/reactor.hpp"
#include "relay/relay.hpp"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

namespace flowrelay::linux_host {

struct TproxySourceOptions {
  std::uint16_t port = 7893;
  bool ipv6 = true;  // also listen on [::1]:P (skipped with a warning when IPv6 is unavailable)
  std::size_t max_udp_associations = 65536;  // per family; datagrams of new flows beyond it are dropped
  std::uint32_t reply_mark = 0;              // SO_MARK on UDP reply sockets (the bypass mark)
  /// The epoch stamped on each claimed flow (the epoch whose table is installed). Any thread.
  std::function<relay::EpochId()> epoch;
};

/// Counters over the source's life (any thread).
struct TproxySourceCounters {
  std::uint64_t tcp_accepted = 0;
  std::uint64_t udp_associations = 0;
  std::uint64_t udp_datagrams = 0;
  std::uint64_t udp_dropped_full = 0;        // table full or relay full
  std::uint64_t udp_reply_socket_failed = 0; // e.g. EADDRINUSE binding the original destination
  std::uint64_t not_diverted = 0;            // connections / datagrams sent to our sockets directly: refused
};

/// Owns the transparent sockets. start() and stop() from outside the reactor threads.
class TproxySource {
 public:
  TproxySource(relay::Reactor& reactor, relay::Relay& relay, TproxySourceOptions options);
  ~TproxySource();
  TproxySource(const TproxySource&) = delete;
  TproxySource& operator=(const TproxySource&) = delete;

  /// Opens the transparent sockets and starts the loops. Throws std::system_error naming the
  /// address when the IPv4 sockets cannot be opened (IPv6 failures are logged and skipped).
  void start();
  /// Stops accepting and reading new flows; adopted flows (and their reply sockets) go on.
  void stop();

  bool ipv6_active() const { return ipv6_active_; }
  TproxySourceCounters counters() const;

  // Private machinery, named here so the loops in the .cpp can take them.
  struct Stats;
  struct Loops;
  struct TcpShard;
  struct UdpShard;

 private:
  relay::Reactor& reactor_;
  relay::Relay& relay_;
  TproxySourceOptions options_;
  std::shared_ptr<Stats> stats_;
  std::shared_ptr<Loops> loops_;
  std::vector<std::unique_ptr<TcpShard>> tcp_;
  std::vector<std::unique_ptr<UdpShard>> udp_;
  bool ipv6_active_ = false;
};

}  // namespace flowrelay::linux_host
