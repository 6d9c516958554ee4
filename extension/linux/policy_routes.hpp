#pragma once
// Policy routing for the host's own claimed output: packets the nftables output chain marked with
// `fwmark` are looked up in `table`, whose only route is "everything is local, via lo", so they
// come back through prerouting where TPROXY hands them to the relay. IPv4 and IPv6 twins of
//   ip rule add fwmark <fwmark> lookup <table>            (exact mark: no mask, see DESIGN.md)
//   ip route add local 0.0.0.0/0 dev lo table <table>
// made over rtnetlink (libmnl), in the calling thread's network namespace.

#include <cstdint>

namespace flowrelay::linux_host {

struct PolicyRouteSpec {
  std::uint32_t fwmark = 1;
  std::uint32_t table = 100;
  std::uint32_t priority = 9000;  // rule preference: after `local` (0), before `main` (32766)
};

/// Installs and removes the rules and routes. Both are idempotent: installing twice leaves one
/// rule per family, removing what is absent is not an error. Throws std::system_error on any
/// other kernel refusal. Needs CAP_NET_ADMIN.
class PolicyRoutes {
 public:
  explicit PolicyRoutes(PolicyRouteSpec spec) : spec_(spec) {}

  void install();
  void remove();
  /// True when both families' rule and route are present.
  bool installed();

  const PolicyRouteSpec& spec() const { return spec_; }

 private:
  PolicyRouteSpec spec_;
};

}  // namespace flowrelay::linux_host
