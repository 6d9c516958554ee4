#pragma once
// Which flows the system offers the provider at all: the NETransparentProxyNetworkSettings that
// FlowRelayProvider installs with setTunnelNetworkSettings: on every epoch.
//
// By default (`apple.offer: "all"`) that is every outbound flow but loopback: a flow the system
// never offers is never answered NO, so it is not in the bypass ledger, and no later epoch could
// reclaim it. With `"claims"` the settings include only what the claim rules could match:
//
// NENetworkRule matches a destination network (address and prefix, optionally one port) and a
// protocol; it has no port ranges, no uids, apps or host globs. So the settings include a superset
// of what any claim rule could match, and handleNewFlow: decides each offered flow with the
// compiled RuleSet. Including too much costs a NO answer; including too little would leave a flow
// the rules claim with the system, so the union errs wide: a rule's port list becomes "any port"
// past kMaxPortsPerRule ports, and the whole set collapses to one any-destination rule per
// protocol past `max_rules`.
//
// What the platform allows in a transparent proxy's rules (NENetworkRule.h,
// NETransparentProxyNetworkSettings.h): outbound only; port 53 may not be named (a rule for it
// includes every port of its network instead); a wildcard address needs a port, so "any address,
// any port" is the rule with no remote network at all; a wildcard never matches loopback, only an
// explicit loopback network does. offers() models exactly that, so the simulator offers what
// macOS would.

#include "extension/control/config.hpp"
#include "relay/flow_meta.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace flowrelay::apple {

/// One NENetworkRule (outbound). FlowRelayProvider builds it as:
///   no network, port 0   initWithRemoteNetwork:nil ... (all traffic of the protocol but loopback)
///   no network, port P   initWithDestinationNetwork: 0.0.0.0:P /0, and the same for [::]:P
///   network N/len        initWithDestinationNetwork: N:(P or 0) /len
struct NeRule {
  std::optional<control::Cidr> network;  // nullopt: any destination but loopback, both families
  std::uint16_t port = 0;                 // 0: any port (never 53: the platform refuses it)
  control::ProtoMatch proto = control::ProtoMatch::any;

  friend bool operator==(const NeRule&, const NeRule&) = default;
  std::string to_string() const;
};

struct NetworkSettings {
  std::vector<NeRule> included;
  /// The claim rules needed more NENetworkRules than allowed: `included` is the catch-all per
  /// protocol instead (handleNewFlow: still decides every flow exactly).
  bool collapsed = false;

  friend bool operator==(const NetworkSettings&, const NetworkSettings&) = default;
};

/// Ports a rule may list one by one before it includes every port.
inline constexpr std::size_t kMaxPortsPerRule = 16;
/// The one port a transparent proxy's network rule may not name (DNS).
inline constexpr std::uint16_t kUnnamablePort = 53;

/// The included rules for `config`: every outbound flow (offer "all", or a claim default), else
/// every destination, port and protocol a claim rule could match; loopback only where a claim rule
/// names it.
NetworkSettings network_settings_for(const control::Config& config, std::size_t max_rules = 512);

/// Whether the system offers `flow` (destination and protocol) to a provider with `settings`: the
/// simulator's gate, and what the tests hold network_settings_for to.
bool offers(const NetworkSettings& settings, const relay::FlowMeta& flow);

}  // namespace flowrelay::apple
