#include "extension/linux/nft_table.hpp"

#include <nftables/libnftables.h>

#include <charconv>
#include <cstdio>
#include <regex>

namespace flowrelay::linux_host {
namespace {

std::string hex(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

template <class T, class F>
std::string set_of(const std::vector<T>& items, F&& fmt) {
  std::string s = "{ ";
  for (std::size_t i = 0; i < items.size(); ++i) s += (i ? ", " : "") + fmt(items[i]);
  return s + " }";
}

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) out += (c == '"' || c == '\\' || c < 0x20) ? '_' : c;
  return out + "\"";
}

/// Sets flowrelay's bits of the ct mark, keeping the others' (ct_mark.hpp).
std::string set_ct_mark(Verdict v, std::uint64_t epoch) {
  return "ct mark set ct mark & " + hex(~CtMark::mask) + " | " + hex(CtMark::encode(v, epoch));
}

/// The prerouting lines that send forwarded traffic of the gateway's interfaces/sources to
/// `gateway`; none when the spec names neither.
std::string gateway_entry(const GatewaySpec& g) {
  if (g.empty()) return "";
  const std::string comment = " goto gateway comment \"linux.gateway\"\n";
  const std::string iif = g.interfaces.empty() ? "" : " iifname " + set_of(g.interfaces, quote);
  if (g.sources.empty()) return "   " + iif + comment;
  std::vector<Cidr> v4, v6;
  for (const auto& c : g.sources) (c.address.is_v4() ? v4 : v6).push_back(c);
  auto cidr = [](const Cidr& c) { return c.to_string(); };
  std::string out;
  if (!v4.empty()) out += "   " + iif + " ip saddr " + set_of(v4, cidr) + comment;
  if (!v6.empty()) out += "   " + iif + " ip6 saddr " + set_of(v6, cidr) + comment;
  return out;
}

/// One nft line per address family the rule touches (a single nft rule cannot match
/// `ip daddr` and `ip6 daddr` alternatively).
void render_rule(std::string& out, const NftRule& r, std::uint64_t epoch) {
  std::string common;
  switch (r.proto) {
    case ProtoMatch::tcp: common += " meta l4proto tcp"; break;
    case ProtoMatch::udp: common += " meta l4proto udp"; break;
    case ProtoMatch::any: break;
  }
  if (!r.ports.empty())
    common += " th dport " + set_of(r.ports, [](const PortRange& p) {
      if (p.lo > p.hi || p.lo == 0) throw std::invalid_argument("bad port range");
      return p.lo == p.hi ? std::to_string(p.lo) : std::to_string(p.lo) + "-" + std::to_string(p.hi);
    });
  if (!r.uids.empty()) common += " meta skuid " + set_of(r.uids, [](std::uint32_t u) { return std::to_string(u); });
  const std::string action = " " + set_ct_mark(r.verdict, epoch) + " return" +
                             (r.name.empty() ? "" : " comment " + quote(r.name)) + "\n";

  std::vector<Cidr> v4, v6;
  for (const auto& c : r.dst) (c.address.is_v4() ? v4 : v6).push_back(c);
  auto cidr = [](const Cidr& c) { return c.to_string(); };
  if (r.dst.empty()) {
    out += "    " + common.substr(common.empty() ? 0 : 1) + action;
    return;
  }
  if (!v4.empty()) out += "    ip daddr " + set_of(v4, cidr) + common + action;
  if (!v6.empty()) out += "    ip6 daddr " + set_of(v6, cidr) + common + action;
}

// libnftables reports a missing table as ENOENT's text.
bool is_missing_table(const NftError& e) { return std::string_view(e.what()).find("No such file or directory") != std::string_view::npos; }

}  // namespace

Cidr Cidr::parse(std::string_view text) {
  Cidr c;
  auto slash = text.find('/');
  boost::system::error_code ec;
  c.address = boost::asio::ip::make_address(std::string(text.substr(0, slash)), ec);
  if (ec) throw std::invalid_argument(std::string(text) + ": not an address");
  const unsigned max = c.address.is_v4() ? 32 : 128;
  unsigned prefix = max;
  if (slash != std::string_view::npos) {
    auto p = text.substr(slash + 1);
    auto [end, err] = std::from_chars(p.data(), p.data() + p.size(), prefix);
    if (err != std::errc{} || end != p.data() + p.size() || prefix > max)
      throw std::invalid_argument(std::string(text) + ": bad prefix length");
  }
  c.prefix = static_cast<std::uint8_t>(prefix);
  return c;
}

std::string Cidr::to_string() const { return address.to_string() + "/" + std::to_string(prefix); }

std::string render(const NftTableSpec& s) {
  if (s.fwmark == 0) throw std::invalid_argument("fwmark must not be 0");
  if (s.fwmark == s.bypass_mark) throw std::invalid_argument("bypass_mark must differ from fwmark");
  if (s.tproxy_port == 0) throw std::invalid_argument("tproxy_port must not be 0");
  for (const auto& name : s.gateway.interfaces)
    if (name.empty() || name.size() >= 16) throw std::invalid_argument("bad gateway interface name");

  const std::string vmask = hex(CtMark::verdict_mask);
  const std::string claim = hex(CtMark::claim_bits);
  const std::string mask = hex(s.mark_mask());
  const std::string fw = hex(s.fwmark), bypass = hex(s.bypass_mark);
  const std::string set_fw = "meta mark set meta mark & " + hex(~s.mark_mask()) + " | " + fw;
  const std::string port = std::to_string(s.tproxy_port);
  const std::string guards =
      "    ct direction reply return\n"
      "    meta mark & " + mask + " == " + bypass + " return comment \"loop guard: relay upstream sockets\"\n"
      "    meta l4proto != { tcp, udp } return\n"
      "    fib daddr type local return\n";
  // A SYN opens a new TCP connection even when it reuses a conntrack entry (a 4-tuple whose
  // previous connection was reset from the reply side, e.g. by a release, is picked up again in
  // state established with its old mark): decide it afresh, or it inherits a stale verdict.
  const std::string decide =
      "    tcp flags & (fin | syn | rst | ack) == syn jump decide comment \"new connection, maybe on a reused entry\"\n"
      "    ct state new ct mark & " + vmask + " == 0 jump decide\n";

  std::string t;
  // Create-then-delete makes the replacement one transaction whether or not the table exists.
  t += "table inet flowrelay\n";
  t += "delete table inet flowrelay\n";
  t += "table inet flowrelay {\n";
  t += "  comment \"flowrelay epoch=" + std::to_string(s.epoch) + " pid=" + std::to_string(s.owner_pid) + "\"\n";
  // Prerouting claims this host's own flows (the output chain decided and marked them; the policy
  // route brought them back in on lo) and, only in gateway mode, what the named interfaces or
  // sources forward through us. Anything else routed through this host is not ours: no open relay.
  t += "  chain prerouting {\n";
  t += "    type filter hook prerouting priority mangle; policy accept;\n";
  t += guards;
  t += "    iif lo meta mark & " + mask + " == " + fw + " goto divert comment \"this host's own flows\"\n";
  t += gateway_entry(s.gateway);
  t += "  }\n";
  t += "  chain gateway {\n";
  t += decide;
  t += "    goto divert\n";
  t += "  }\n";
  t += "  chain divert {\n";
  t += "    meta l4proto { tcp, udp } ct mark & " + vmask + " == " + claim + " meta nfproto ipv4 tproxy ip to 127.0.0.1:" + port +
       " " + set_fw + " accept\n";
  t += "    meta l4proto { tcp, udp } ct mark & " + vmask + " == " + claim + " meta nfproto ipv6 tproxy ip6 to [::1]:" + port +
       " " + set_fw + " accept\n";
  // A claimed packet no relay socket took must not go on to local delivery: a socket of another
  // user bound to the destination (IP_FREEBIND) and connected to the app wins TPROXY's lookup of
  // established sockets, is refused as not transparent, and would receive the datagram.
  t += "    meta l4proto { tcp, udp } ct mark & " + vmask + " == " + claim +
       " counter drop comment \"claimed, but no relay socket took it\"\n";
  t += "  }\n";
  t += "  chain output {\n";
  t += "    type route hook output priority mangle; policy accept;\n";
  t += guards;
  t += decide;
  t += "    ct mark & " + vmask + " == " + claim + " " + set_fw + "\n";
  t += "  }\n";
  t += "  chain decide {\n";
  for (const auto& r : s.rules) render_rule(t, r, s.epoch);
  t += "    " + set_ct_mark(s.default_verdict, s.epoch) + " comment \"default\"\n";
  t += "  }\n";
  t += "}\n";
  return t;
}

NftTable::NftTable() {
  ctx_ = nft_ctx_new(NFT_CTX_DEFAULT);
  if (ctx_ == nullptr) throw NftError("nft_ctx_new failed");
  nft_ctx_buffer_output(ctx_);
  nft_ctx_buffer_error(ctx_);
}

NftTable::~NftTable() { nft_ctx_free(ctx_); }

std::string NftTable::run(const std::string& script) {
  const int rc = nft_run_cmd_from_buffer(ctx_, script.c_str());
  std::string out = nft_ctx_get_output_buffer(ctx_);
  std::string err = nft_ctx_get_error_buffer(ctx_);
  if (rc != 0) throw NftError(err.empty() ? "nft command failed" : err);
  return out;
}

void NftTable::apply(const NftTableSpec& spec) { run(render(spec)); }

std::optional<InstalledTable> NftTable::installed() {
  std::string listing;
  try {
    listing = list();
  } catch (const NftError& e) {
    if (is_missing_table(e)) return std::nullopt;
    throw;
  }
  InstalledTable t;
  std::smatch m;
  static const std::regex comment(R"re(comment "flowrelay epoch=([0-9]+) pid=(-?[0-9]+)")re");
  if (std::regex_search(listing, m, comment)) {
    t.epoch = std::stoull(m[1]);
    t.owner_pid = std::stoll(m[2]);
  }
  return t;
}

bool NftTable::remove() {
  try {
    run("delete table inet flowrelay\n");
    return true;
  } catch (const NftError& e) {
    if (is_missing_table(e)) return false;
    throw;
  }
}

std::string NftTable::list() { return run("list table inet flowrelay\n"); }

}  // namespace flowrelay::linux_host
