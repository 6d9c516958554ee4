#pragma once
// What the platform underneath can evaluate and do; config validation and the planner consult it.

#include <cstdint>
#include <string_view>

namespace flowrelay::control {

/// Capabilities of the platform a config is validated for. Linux matches on uids; Apple matches on
/// signing identifiers (`apps`) and hostnames (`hosts`). A rule using a field its platform cannot
/// evaluate is an error there (`rules[0].apps: not supported on linux`), never silently ignored.
struct PlatformCaps {
  std::string_view name;
  bool uids = false;
  bool apps = false;
  bool hosts = false;
  /// `limits.max_flows` when the config leaves it out. macOS gives a provider a limited number of
  /// flow slots (about 600 reported), and a flow over the cap is answered NO there, not failed.
  std::uint64_t default_max_flows = 65536;
  /// `linux.gateway`: claiming traffic the host forwards for others (nftables prerouting).
  bool gateway = false;
  /// `via` on a rule: claimed flows through an upstream proxy (the macOS adapter dials direct only).
  bool upstreams = false;

  static constexpr PlatformCaps for_linux() { return {"linux", true, false, false, 65536, true, true}; }
  static constexpr PlatformCaps for_apple() { return {"apple", false, true, true, 450, false, false}; }
  /// Accepts every field: for tools that only inspect a config, and for tests.
  static constexpr PlatformCaps any() { return {"any", true, true, true, 65536, true, true}; }
  /// The platform this binary was built for.
  static constexpr PlatformCaps native() {
#if defined(__APPLE__)
    return for_apple();
#else
    return for_linux();
#endif
  }
};

}  // namespace flowrelay::control
