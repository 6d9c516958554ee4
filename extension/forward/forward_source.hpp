#pragma once
// Port-forward flow source: every connection (or UDP peer) on one listening address is a claimed flow
// bound for one fixed destination. It is flowrelay without the transparent proxy in front, which
// makes it the mode to benchmark against other relays.

#include "relay/flow_meta.hpp"
#include "relay/reactor.hpp"
#include "relay/relay.hpp"

#include <memory>
#include <vector>

namespace flowrelay::forward {

struct ForwardOptions {
  relay::Endpoint listen;  // port 0 picks one (see local_endpoint())
  relay::Endpoint to;
  bool udp = false;        // forward UDP datagrams instead of TCP connections
};

/// TCP: one listener; each connection runs on the shard Reactor::place() picks (the listener's own
/// while it is lightly loaded). UDP: a socket on every shard (SO_REUSEPORT: the kernel hashes each
/// peer to one shard, no handoff between threads) and hands each accepted flow to the relay on the shard that accepted it.
class ForwardSource {
 public:
  ForwardSource(relay::Reactor& reactor, relay::Relay& relay, ForwardOptions options);
  ~ForwardSource();
  ForwardSource(const ForwardSource&) = delete;
  ForwardSource& operator=(const ForwardSource&) = delete;

  /// Binds and starts accepting. Throws std::system_error naming the address if it cannot bind.
  void start();
  /// Stops accepting; flows already adopted go on. Any thread but a reactor thread.
  void stop();

  relay::Endpoint local_endpoint() const { return bound_; }

 private:
  struct Shard;
  relay::Reactor& reactor_;
  relay::Relay& relay_;
  ForwardOptions options_;
  relay::Endpoint bound_;
  std::vector<std::shared_ptr<Shard>> shards_;
};

}  // namespace flowrelay::forward
