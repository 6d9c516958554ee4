#pragma once
// The application's side of a claimed UDP flow. The source pushes the app's datagrams into the
// relay (UdpAssociation::from_app, peer = destination); the relay hands replies back through
// send_to_app (peer = the source the app must see them come from).

#include "buffers/buffer.hpp"
#include "relay/flow_meta.hpp"

namespace flowrelay::relay {

struct Datagram {
  buffers::Buffer payload;
  Endpoint peer;
};

class UdpFlow {
 public:
  virtual ~UdpFlow() = default;
  /// A reply for the app, to appear from d.peer. Non-blocking: a full socket drops it (UDP).
  /// Returns false when it was dropped.
  virtual bool send_to_app(const Datagram& d) = 0;
  /// The relay ended the association (idle, released, drained): forget it, later datagrams from
  /// the app start a new one.
  virtual void closed() = 0;
};

/// The relay's handle on a UDP association, held by the source that adopted it.
class UdpAssociation {
 public:
  virtual ~UdpAssociation() = default;
  /// A datagram from the app to d.peer. Call on the association's reactor thread.
  virtual void from_app(Datagram d) = 0;
  virtual FlowId id() const noexcept = 0;
};

}  // namespace flowrelay::relay
