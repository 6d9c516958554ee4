#pragma once
// The daemon's configuration: the DESIGN.md JSON schema, parsed and strictly validated.

#include "extension/control/platform.hpp"

#include <boost/asio/ip/address.hpp>

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace flowrelay::control {

/// What a rule (or the default) decides for a flow.
enum class Verdict : std::uint8_t { bypass, claim };

/// Which transport a rule applies to.
enum class ProtoMatch : std::uint8_t { any, tcp, udp };

/// How a new epoch treats live flows whose verdict it flips (DESIGN.md "policy").
enum class ReclaimPolicy : std::uint8_t { surgical, restart, keep };

const char* to_string(Verdict v);
const char* to_string(ProtoMatch p);
const char* to_string(ReclaimPolicy p);

/// A network prefix in canonical form: host bits are always zero; v4-mapped v6 prefixes are rejected.
struct Cidr {
  boost::asio::ip::address network;
  std::uint8_t prefix = 0;
  std::string to_string() const;
  /// Same family and inside the prefix (a v4-mapped v6 address is not inside a v4 prefix: normalise first).
  bool contains(const boost::asio::ip::address& a) const;
  friend bool operator==(const Cidr&, const Cidr&) = default;
};

/// Inclusive port range; a single port has lo == hi.
struct PortRange {
  std::uint16_t lo = 0;
  std::uint16_t hi = 0;
  friend bool operator==(const PortRange&, const PortRange&) = default;
};

/// One rule. An empty list means the field was absent: it matches anything. (An explicitly empty
/// list is a config error, so "empty" never means "matches nothing".)
struct Rule {
  std::string name;  // from the config, or "rules[i]" when it had none
  Verdict verdict = Verdict::bypass;
  ProtoMatch proto = ProtoMatch::any;
  std::vector<Cidr> dst;
  std::vector<PortRange> ports;
  std::vector<std::uint32_t> uids;
  std::vector<std::string> apps;   // globs over the Apple signing identifier
  std::vector<std::string> hosts;  // globs over the lower-cased hostname
  /// The upstream (an `upstreams` key) claimed flows leave through; empty: straight to the destination.
  std::string via;
};

/// One entry of `upstreams`: a proxy that claimed flows leave through when their rule names it.
struct Upstream {
  enum class Kind : std::uint8_t { socks5, http };
  std::string name;  // its key in `upstreams`
  Kind kind = Kind::socks5;
  boost::asio::ip::address address;
  std::uint16_t port = 0;
  std::string username;       // empty: no authentication
  std::string password_file;  // the password is read from here when an epoch starts, never kept in the config
  friend bool operator==(const Upstream&, const Upstream&) = default;
};

/// The `reclaim` section.
struct ReclaimSettings {
  ReclaimPolicy policy = ReclaimPolicy::surgical;
  std::chrono::milliseconds debounce{250};
  std::chrono::milliseconds drain{2000};
  std::chrono::milliseconds min_restart_interval{10000};
};

/// The `limits` section.
struct Limits {
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::seconds tcp_idle_timeout{3600};
  std::chrono::seconds udp_idle_timeout{60};
  std::uint64_t flow_buffer_bytes = 262144;
  std::uint64_t max_flows = 65536;
  /// UDP flows among max_flows: their own budget, so a source-port spray cannot starve TCP.
  std::uint64_t max_udp_flows = 16384;
  /// All flows' buffered bytes together (the chunk pools' memory); a flow that finds the budget
  /// spent waits to read. Read at start.
  std::uint64_t max_buffer_bytes = 1ULL << 30;
};

/// `linux.gateway`: whose forwarded traffic may be claimed. Absent (both empty): only flows that
/// start on this host. With both lists a flow must arrive on a listed interface AND come from a
/// listed network; with one list, that one decides.
struct GatewaySettings {
  std::vector<std::string> interfaces;  // interface names, as `ip link` shows them
  std::vector<Cidr> sources;
  bool enabled() const { return !interfaces.empty() || !sources.empty(); }
  friend bool operator==(const GatewaySettings&, const GatewaySettings&) = default;
};

/// The `linux` section. The policy route matches `fwmark` under the mask fwmark|bypass_mark;
/// `bypass_mark` must differ.
struct LinuxSettings {
  std::uint16_t tproxy_port = 7893;
  std::uint32_t fwmark = 1;
  std::uint32_t route_table = 100;
  std::uint32_t bypass_mark = 255;
  /// After setup the daemon runs as this user (keeping its three network capabilities); empty:
  /// stays uid 0, with the same three capabilities and no others.
  std::string run_as;
  /// Takes effect on reload (the table is rebuilt per epoch), unlike the keys above.
  GatewaySettings gateway;
};

/// The `apple` section: which flows the provider asks the system to offer to handleNewFlow:.
struct AppleSettings {
  enum class Offer : std::uint8_t {
    /// Every outbound TCP and UDP flow but loopback: each gets a verdict, and each NO answer is
    /// in the bypass ledger, so any later epoch can reclaim any flow (by a restart).
    all,
    /// Only what the claim rules could match: fewer handleNewFlow: calls, but a flow outside
    /// them is never seen, so a later epoch that claims it takes it only when it reconnects.
    claims,
  };
  Offer offer = Offer::all;
};

/// A validated configuration. Immutable once built; shared between epochs by shared_ptr.
struct Config {
  Verdict default_verdict = Verdict::bypass;
  std::vector<Rule> rules;
  std::vector<Upstream> upstreams;  // in key order
  /// The upstream called `name`, or nullptr.
  const Upstream* upstream(std::string_view name) const;
  ReclaimSettings reclaim;
  Limits limits;
  LinuxSettings linux_settings;
  AppleSettings apple_settings;
  std::string control_socket = "/run/flowrelay.sock";
  std::string metrics_listen = "127.0.0.1:9464";
  /// FNV-1a 64 of the canonical (re-serialised) JSON: whitespace-only edits hash the same.
  std::uint64_t content_hash = 0;
};

/// A rejected config: `path()` names the fault (`rules[2].ports[0]`, empty for the whole
/// document), `message()` says what was wrong; `what()` is "path: message".
class ConfigError : public std::runtime_error {
 public:
  ConfigError(std::string path, std::string message);
  const std::string& path() const { return path_; }
  const std::string& message() const { return message_; }

 private:
  std::string path_;
  std::string message_;
};

/// Parses and validates `text` for a platform. Throws ConfigError on the first fault found.
/// Errors in the JSON itself (or bad UTF-8) carry the path "line L, column C".
Config parse_config(std::string_view text, const PlatformCaps& platform);

/// Damerau (optimal string alignment) edit distance; used for "did you mean" suggestions.
/// O(|a| * |b|) time, O(|b|) memory: callers bound the lengths (an unknown key is compared only
/// with allowed keys it could be within reach of).
std::size_t edit_distance(std::string_view a, std::string_view b);

}  // namespace flowrelay::control
