#pragma once
// relay::UdpFlow over an NEAppProxyUDPFlow (through NeUdpFlowOps): the app's side of a claimed UDP
// flow on macOS. One NE flow is one app socket; it may send to many destinations, and the relay's
// association gives each destination its own upstream socket.
//
//   app -> relay   one NE read outstanding; every datagram of a batch goes to the association as
//                  an external Buffer over its NSData (no copy), to the endpoint the app chose. A nil
//                  batch reads again; an empty one is EOF and ends the association.
//   relay -> app   replies collect during one turn of the shard and go out in one NE write, each
//                  from its own endpoint; past `watermark` bytes in flight a reply is dropped and
//                  counted, as a full socket would.
// Completions arrive on any thread and post one wake-up to the shard, as in NeTcpFlow.

#include "extension/apple/ne_flow_ops.hpp"
#include "extension/apple/reactor_port.hpp"
#include "relay/relay.hpp"
#include "relay/udp_flow.hpp"

#include <boost/smart_ptr/intrusive_ptr.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>

namespace flowrelay::apple {

/// Counters of one flow (the shard's thread).
struct NeUdpFlowCounters {
  std::uint64_t to_relay = 0;      // datagrams from the app handed to the association
  std::uint64_t to_app = 0;        // replies handed to NE
  std::uint64_t dropped_full = 0;  // replies dropped: too many bytes in flight to the app
};

class NeUdpFlow final : public relay::UdpFlow {
 public:
  /// Opens `ops` at once. Construct, use and destroy on the shard `port` posts to.
  NeUdpFlow(std::shared_ptr<ReactorPort> port, relay::Relay& relay, std::unique_ptr<NeUdpFlowOps> ops,
            std::size_t watermark);
  ~NeUdpFlow() override;
  NeUdpFlow(const NeUdpFlow&) = delete;
  NeUdpFlow& operator=(const NeUdpFlow&) = delete;

  /// Feeds the app's datagrams to `association` (the relay's handle on this flow) from now on.
  void start(std::weak_ptr<relay::UdpAssociation> association, relay::FlowId id);

  bool send_to_app(const relay::Datagram& d) override;
  void closed() override;

  const NeUdpFlowCounters& counters() const noexcept;

  struct State;  // shared with the completions in flight

 private:
  boost::intrusive_ptr<State> s_;
};

}  // namespace flowrelay::apple
