#pragma once
// Conntrack entries of the current network namespace (libnetfilter_conntrack): list them and
// re-mark them. This is how a UDP flow changes sides without the app noticing: TPROXY diverts
// per packet, so a new ct mark (see ct_mark.hpp) moves the flow's next datagram into (claim) or
// out of (bypass) the relay.
//
// There is deliberately no delete: deleting a live UDP entry lets a reply already in flight create
// a new entry in the reverse orientation; the app's next datagram then matches it as
// `ct direction reply`, which the ruleset skips, and the flow stays bypassed for as long as it keeps
// talking (DESIGN.md, "Facts checked").

#include "relay/flow_meta.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

struct nfct_handle;

namespace flowrelay::linux_host {

namespace detail {
class NetlinkSocket;
}

/// One tracked connection: its original-direction tuple (app -> destination for an app's flow),
/// the reply tuple, and its mark.
struct ConntrackEntry {
  relay::Proto proto = relay::Proto::udp;
  relay::Endpoint orig_src;
  relay::Endpoint orig_dst;
  relay::Endpoint reply_src;
  relay::Endpoint reply_dst;
  std::uint32_t mark = 0;
};

/// A ctnetlink handle bound to the calling thread's network namespace at construction.
/// Needs CAP_NET_ADMIN. Not thread-safe.
class Conntrack {
 public:
  /// Throws std::system_error if ctnetlink cannot be opened.
  Conntrack();
  ~Conntrack();
  Conntrack(const Conntrack&) = delete;
  Conntrack& operator=(const Conntrack&) = delete;

  /// All TCP and UDP entries (both families), or only `proto`'s. Throws std::system_error.
  std::vector<ConntrackEntry> list(std::optional<relay::Proto> proto = std::nullopt);

  /// The entry whose original direction is exactly (proto, src -> dst), if any.
  std::optional<ConntrackEntry> find(relay::Proto proto, const relay::Endpoint& src, const relay::Endpoint& dst);

  /// Sets the `mask` bits of the mark of the entry whose original direction is (proto, src -> dst)
  /// to those of `mark`; the other bits keep their value (another tool's). Returns false when there
  /// is no such entry (the flow ended; nothing to move). Throws std::system_error otherwise.
  bool set_mark(relay::Proto proto, const relay::Endpoint& src, const relay::Endpoint& dst, std::uint32_t mark,
                std::uint32_t mask = 0xffffffffu);

 private:
  /// nfct_query(h_, type, data) with `collect` feeding `c`, asked again on EINTR (a signal, or a
  /// dump the kernel flagged as interrupted: entries may be missing or repeated). 0, or the errno.
  int query(int type, void* data, void* c, std::vector<ConntrackEntry>& out);

  nfct_handle* h_ = nullptr;
  std::unique_ptr<detail::NetlinkSocket> nl_;  // for masked re-marks; opened at the first
};

}  // namespace flowrelay::linux_host
