#pragma once
// Policy routing for claimed flows: packets the nftables chains marked with `fwmark` (under
// `fwmask`) are looked up in `table`, whose only route is "everything is local, via lo", so they
// come back through prerouting where TPROXY hands them to the relay. IPv4 and IPv6 twins of
//   ip rule add fwmark <fwmark>/<fwmask> lookup <table>   (fwmask covers fwmark and the bypass
//                                                          mark: see DESIGN.md)
//   ip route add local 0.0.0.0/0 dev lo table <table>
// made over rtnetlink (libmnl), in the calling thread's network namespace.
//
// Ownership: install() remembers exactly which rules and routes it created, and remove() deletes
// those and nothing else. A table that already holds routes is refused (someone uses it); an
// identical rule that is already there belongs to whoever made it and is left alone.

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace flowrelay::linux_host {

struct PolicyRouteSpec {
  std::uint32_t fwmark = 1;
  std::uint32_t table = 100;
  std::uint32_t priority = 9000;  // rule preference: after `local` (0), before `main` (32766)
  std::uint32_t fwmask = 0xffffffffu;  // the mark bits the rule tests
};

/// install() found routes in the table it was given: what() names the table and its routes.
class RouteTableInUse : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Installs the rules and routes, and removes what it installed. Throws std::system_error on a
/// kernel refusal. Needs CAP_NET_ADMIN. Not thread-safe.
class PolicyRoutes {
 public:
  explicit PolicyRoutes(PolicyRouteSpec spec) : spec_(spec) {}

  /// Refuses (RouteTableInUse) a table with any route in it, before adding anything; then adds the
  /// rule and route per family. A rule already present is not ours: see preexisting_rules().
  void install();
  /// Deletes what install() added, nothing else; idempotent.
  void remove();
  /// Deletes rules and routes of this spec's exact shape whoever made them: for taking over from
  /// a run that died without cleaning up (`run --replace`). Idempotent.
  void remove_stale();
  /// True when both families' rule and route are present (whoever made them).
  bool installed();
  /// Adds again what install() added and someone removed since (`ip rule del`, a flush); how
  /// many it re-added.
  int repair();
  /// The routes in the table, both families, one line each ("local 0.0.0.0/0 dev 1").
  std::vector<std::string> table_routes();
  /// Families ("ip", "ip -6") whose rule was already there at install() and is left in place.
  std::vector<std::string> preexisting_rules() const;

  const PolicyRouteSpec& spec() const { return spec_; }

 private:
  struct Added {
    bool rule = false;
    bool route = false;
    bool rule_preexisting = false;
  };
  PolicyRouteSpec spec_;
  std::array<Added, 2> added_{};  // per family, in kFamilies order (v4, v6)
};

}  // namespace flowrelay::linux_host
