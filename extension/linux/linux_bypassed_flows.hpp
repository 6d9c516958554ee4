#pragma once
// BypassedFlows on Linux: the namespace's live app flows (sock_diag for TCP, conntrack entries of
// live UDP sockets) minus what the relay claims and minus the relay's own sockets (the sockets of
// this process, and anything carrying the bypass mark). What the reclaim planner plans against.

#include "extension/control/bypassed_flows.hpp"
#include "extension/linux/conntrack.hpp"
#include "extension/linux/sock_diag.hpp"
#include "relay/relay.hpp"

#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

namespace flowrelay::linux_host {

/// One bypassed flow, with the kernel object that can move it.
struct BypassedFlow {
  relay::FlowMeta meta;          // addresses unmapped (v4-mapped shown as IPv4); epoch from the ct mark
  std::optional<SocketInfo> socket;  // TCP: the app's socket, for SOCK_DESTROY
};

/// Control-thread object (owns a sock_diag and a ctnetlink handle of the calling thread's namespace).
class LinuxBypassedFlows final : public control::BypassedFlows {
 public:
  /// Throws std::system_error when netlink cannot be opened.
  LinuxBypassedFlows(relay::Relay& relay, std::uint32_t bypass_mark);

  std::vector<relay::FlowMeta> snapshot() override;
  /// The full listing (snapshot() keeps it too, by id, for find()).
  std::vector<BypassedFlow> list();
  /// A flow of the latest listing.
  const BypassedFlow* find(relay::FlowId id) const;
  /// Fills in the uid of claimed flows from the app sockets they came from (the relay only sees
  /// the diverted side), so that `uids` rules evaluate for them as nftables did. One dump.
  void add_uids(std::vector<relay::FlowMeta>& claimed);

  SockDiag& diag() { return diag_; }
  Conntrack& conntrack() { return ct_; }

 private:
  relay::Relay& relay_;
  std::uint32_t bypass_mark_;
  SockDiag diag_;
  Conntrack ct_;
  std::unordered_map<relay::FlowId, BypassedFlow> last_;
};

/// v4-mapped IPv6 (::ffff:a.b.c.d) as IPv4; anything else unchanged.
relay::Endpoint unmapped(const relay::Endpoint& e);

}  // namespace flowrelay::linux_host
