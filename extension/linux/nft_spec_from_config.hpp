#pragma once
// control::Config (one accepted epoch) -> NftTableSpec. Header-only for the same reason as
// inotify_config_source.hpp: the daemon links the control plane, flowrelay::linux_host does not.

#include "extension/control/config.hpp"
#include "extension/linux/nft_table.hpp"

#include <stdexcept>

namespace flowrelay::linux_host {

/// The table for `config` under `epoch`, owned by `owner_pid`. Throws std::invalid_argument for a
/// rule nftables cannot evaluate (apps, hosts: parse_config should have rejected them on Linux).
inline NftTableSpec nft_spec_from_config(const control::Config& config, std::uint64_t epoch, std::int64_t owner_pid) {
  auto verdict = [](control::Verdict v) { return v == control::Verdict::claim ? Verdict::claim : Verdict::bypass; };
  NftTableSpec s;
  s.default_verdict = verdict(config.default_verdict);
  s.tproxy_port = config.linux_settings.tproxy_port;
  s.fwmark = config.linux_settings.fwmark;
  s.bypass_mark = config.linux_settings.bypass_mark;
  s.epoch = epoch;
  s.owner_pid = owner_pid;
  s.gateway.interfaces = config.linux_settings.gateway.interfaces;
  for (const auto& c : config.linux_settings.gateway.sources) s.gateway.sources.push_back({c.network, c.prefix});
  for (const auto& r : config.rules) {
    if (!r.apps.empty() || !r.hosts.empty())
      throw std::invalid_argument(r.name + ": apps/hosts cannot be matched by nftables on Linux");
    NftRule n;
    n.name = r.name;
    n.verdict = verdict(r.verdict);
    n.proto = r.proto == control::ProtoMatch::tcp   ? ProtoMatch::tcp
              : r.proto == control::ProtoMatch::udp ? ProtoMatch::udp
                                                    : ProtoMatch::any;
    for (const auto& c : r.dst) n.dst.push_back({c.network, c.prefix});
    for (const auto& p : r.ports) n.ports.push_back({p.lo, p.hi});
    n.uids = r.uids;
    s.rules.push_back(std::move(n));
  }
  return s;
}

}  // namespace flowrelay::linux_host
