#include "extension/apple/network_settings.hpp"

#include <algorithm>

namespace flowrelay::apple {

namespace {

using control::ProtoMatch;

// A rule's ports one by one, or {0} (any) when it lists none, too many, or the unnamable one.
std::vector<std::uint16_t> ports_of(const control::Rule& r) {
  std::size_t count = 0;
  bool unnamable = false;
  for (const auto& p : r.ports) {
    count += std::size_t(p.hi - p.lo) + 1;
    unnamable = unnamable || (p.lo <= kUnnamablePort && kUnnamablePort <= p.hi);
  }
  if (r.ports.empty() || count > kMaxPortsPerRule || unnamable) return {0};
  std::vector<std::uint16_t> out;
  for (const auto& p : r.ports)
    for (std::uint32_t port = p.lo; port <= p.hi; ++port) out.push_back(static_cast<std::uint16_t>(port));
  return out;
}

bool proto_covers(ProtoMatch wide, ProtoMatch narrow) { return wide == ProtoMatch::any || wide == narrow; }

// A wildcard rule never matches loopback: a network reaching into it needs its own rule.
bool touches_loopback(const control::Cidr& c) {
  namespace ip = boost::asio::ip;
  if (c.network.is_v6()) return c.contains(ip::address_v6::loopback());
  const control::Cidr loopback{ip::make_address_v4("127.0.0.0"), 8};
  return c.contains(ip::make_address_v4("127.0.0.0")) || loopback.contains(c.network);
}

// `a` matches every flow `b` matches.
bool covers(const NeRule& a, const NeRule& b) {
  if (!proto_covers(a.proto, b.proto)) return false;
  if (a.port != 0 && a.port != b.port) return false;
  if (!a.network) return !b.network || !touches_loopback(*b.network);
  if (!b.network) return false;
  return a.network->prefix <= b.network->prefix && a.network->contains(b.network->network);
}

void add(std::vector<NeRule>& rules, NeRule r) {
  for (const auto& have : rules)
    if (covers(have, r)) return;
  std::erase_if(rules, [&](const NeRule& have) { return covers(r, have); });
  rules.push_back(std::move(r));
}

boost::asio::ip::address unmapped(const boost::asio::ip::address& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped()) return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, a.to_v6());
  return a;
}

}  // namespace

std::string NeRule::to_string() const {
  std::string s = network ? network->to_string() : std::string("any");
  s += ':';
  s += port ? std::to_string(port) : std::string("any");
  s += ' ';
  s += control::to_string(proto);
  return s;
}

NetworkSettings network_settings_for(const control::Config& config, std::size_t max_rules) {
  NetworkSettings s;
  // Everything but loopback: when the default claims, or when every flow should get a verdict.
  // Claim rules naming loopback still add their own rules below; the rest are covered.
  if (config.default_verdict == control::Verdict::claim ||
      config.apple_settings.offer == control::AppleSettings::Offer::all)
    s.included.push_back(NeRule{});
  std::vector<ProtoMatch> protos;  // for the collapsed form
  for (const auto& r : config.rules) {
    if (r.verdict != control::Verdict::claim) continue;
    if (std::find(protos.begin(), protos.end(), r.proto) == protos.end()) protos.push_back(r.proto);
    const auto ports = ports_of(r);
    std::vector<std::optional<control::Cidr>> networks;
    for (const auto& c : r.dst) {
      // A /0 is the platform's wildcard: it needs a port, and it leaves loopback out.
      if (c.prefix == 0) networks.push_back(std::nullopt);
      else networks.push_back(c);
    }
    if (networks.empty()) networks.push_back(std::nullopt);
    for (const auto& net : networks)
      for (auto port : ports) add(s.included, NeRule{net, port, r.proto});
  }
  if (s.included.size() > max_rules) {
    const bool everything = !s.included.empty() && s.included.front() == NeRule{};
    s.included.clear();
    s.collapsed = true;
    if (everything) s.included.push_back(NeRule{});
    for (auto p : protos) add(s.included, NeRule{std::nullopt, 0, p});
  }
  return s;
}

bool offers(const NetworkSettings& settings, const relay::FlowMeta& flow) {
  const auto proto = flow.proto == relay::Proto::tcp ? ProtoMatch::tcp : ProtoMatch::udp;
  const auto address = unmapped(flow.dst.address);
  return std::any_of(settings.included.begin(), settings.included.end(), [&](const NeRule& r) {
    return proto_covers(r.proto, proto) && (r.port == 0 || r.port == flow.dst.port) &&
           (r.network ? r.network->contains(address) : !address.is_loopback());
  });
}

}  // namespace flowrelay::apple
