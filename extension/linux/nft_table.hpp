#pragma once
// The one nftables table flowrelay owns, `table inet flowrelay`, rendered from a neutral description
// of an epoch's rules and applied atomically through libnftables (never by running `nft`).
//
// What the table does (DESIGN.md, "Facts checked" and "Security model"):
//   prerouting (filter, mangle prio)             output (route, mangle prio)
//     ct direction reply   -> return               ct direction reply   -> return
//     meta mark bypass     -> return               meta mark bypass     -> return   (loop guard: relay upstreams)
//     not tcp/udp          -> return               not tcp/udp          -> return
//     daddr is local       -> return               daddr is local       -> return
//     iif lo, meta mark fwmark -> goto divert      tcp SYN (no ACK)     -> jump decide
//       (this host's own flows, decided in output) ct state new, undecided -> jump decide
//     gateway interfaces / sources -> goto gateway ct mark claim -> meta mark set fwmark
//     anything else (forwarded for others): not claimed   (rerouted by policy_routes.hpp via lo
//   gateway: SYN or new+undecided -> jump decide;          into prerouting)
//            goto divert
//   divert: ct mark claim -> tproxy to 127.0.0.1:P / [::1]:P, meta mark set fwmark, accept
//   decide: the rules in order, first match sets the ct mark and returns; then the default.
// Marks are masked (ct_mark.hpp): only flowrelay's bits are tested and set.
// Undecided flows (older than the table) are carried by the OS until re-marked or destroyed.

#include "extension/linux/ct_mark.hpp"

#include <boost/asio/ip/address.hpp>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

struct nft_ctx;

namespace flowrelay::linux_host {

/// An address prefix, e.g. 203.0.113.0/24 or 2001:db8::/32.
struct Cidr {
  boost::asio::ip::address address;
  std::uint8_t prefix = 0;
  /// Parses "a.b.c.d/n", "x::y/n" or a bare address (full length). Throws std::invalid_argument.
  static Cidr parse(std::string_view text);
  std::string to_string() const;
};

struct PortRange {
  std::uint16_t lo = 1;
  std::uint16_t hi = 65535;
};

enum class ProtoMatch : std::uint8_t { any, tcp, udp };

/// One rule of an epoch, in the order the config lists it. Empty lists mean "any".
struct NftRule {
  std::string name;  // rendered as a rule comment, for `nft list` readers
  Verdict verdict = Verdict::claim;
  ProtoMatch proto = ProtoMatch::any;
  std::vector<Cidr> dst;          // IPv4 and IPv6 mixed; a rule with only v4 prefixes never matches v6
  std::vector<PortRange> ports;   // destination ports
  std::vector<std::uint32_t> uids;  // socket owner (meta skuid): matches only the host's own output
};

/// Forwarded traffic the table may claim (`linux.gateway`). Empty: none, only this host's own
/// flows. With both lists a packet must match both (arrive on a listed interface from a listed
/// source); with one, that one decides.
struct GatewaySpec {
  std::vector<std::string> interfaces;  // iifname
  std::vector<Cidr> sources;            // ip / ip6 saddr
  bool empty() const { return interfaces.empty() && sources.empty(); }
};

/// Everything the table depends on. Two specs that compare equal render the same table.
struct NftTableSpec {
  std::vector<NftRule> rules;
  Verdict default_verdict = Verdict::bypass;
  std::uint16_t tproxy_port = 7893;
  std::uint32_t fwmark = 1;
  std::uint32_t bypass_mark = 255;
  std::uint64_t epoch = 0;
  std::int64_t owner_pid = 0;  // recorded in the table comment to tell our table from a stale one
  GatewaySpec gateway;
  /// The packet-mark bits the table tests and sets.
  std::uint32_t mark_mask() const { return MetaMark::mask(fwmark, bypass_mark); }
};

/// The nft script that atomically replaces (or creates) `table inet flowrelay` with `spec`.
/// Throws std::invalid_argument for specs nft cannot express (fwmark == bypass_mark, fwmark 0, ...).
std::string render(const NftTableSpec& spec);

/// What a table found in the namespace says about itself.
struct InstalledTable {
  std::optional<std::uint64_t> epoch;   // from the comment; nullopt if not ours / unreadable
  std::optional<std::int64_t> owner_pid;
};

/// libnftables failed; what() carries nft's own error text.
class NftError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A libnftables context in the calling thread's network namespace (namespaces are bound per
/// netlink socket, which libnftables opens per command). Needs CAP_NET_ADMIN. Not thread-safe.
class NftTable {
 public:
  static constexpr std::string_view family = "inet";
  static constexpr std::string_view name = "flowrelay";

  NftTable();
  ~NftTable();
  NftTable(const NftTable&) = delete;
  NftTable& operator=(const NftTable&) = delete;

  /// Renders and applies `spec` in one transaction: either the whole new table is in place or the
  /// old one (if any) is untouched. Throws NftError / std::invalid_argument.
  void apply(const NftTableSpec& spec);
  /// The table present in this namespace (ours or a crashed run's), if any.
  std::optional<InstalledTable> installed();
  /// Deletes the table; false if there was none.
  bool remove();
  /// `nft list table inet flowrelay`, for logs and tests.
  std::string list();
  /// Runs an nft script, returns its output. Throws NftError with nft's error text.
  std::string run(const std::string& script);

 private:
  nft_ctx* ctx_ = nullptr;
};

}  // namespace flowrelay::linux_host
