#include "extension/linux/nft_table.hpp"

#include "extension/linux/conntrack.hpp"
#include "extension/linux/policy_routes.hpp"
#include "tests/linux/tproxy_world.hpp"

#include <gtest/gtest.h>
#include <sys/fsuid.h>

namespace flowrelay::linux_host {
namespace {

using namespace testing;

constexpr std::uint16_t kTproxyPort = 7893;
constexpr std::uint32_t kAppUid = 4242;

/// Epoch A of the scenario: claim TCP 443 (and UDP 5353) to the world, bypass the rest.
NftTableSpec scenario_spec(std::uint64_t epoch) {
  NftTableSpec s;
  s.epoch = epoch;
  s.tproxy_port = kTproxyPort;
  s.owner_pid = ::getpid();
  NftRule web;
  web.name = "web";
  web.proto = ProtoMatch::tcp;
  web.dst = {Cidr::parse("203.0.113.0/24"), Cidr::parse("2001:db8::/32")};
  web.ports = {{443, 443}, {8000, 8099}};
  NftRule dns;
  dns.name = "dns";
  dns.proto = ProtoMatch::udp;
  dns.dst = web.dst;
  dns.ports = {{5353, 5353}};
  s.rules = {web, dns};
  return s;
}

TEST(NftTable, RendersTheDesignFacts) {
  auto s = scenario_spec(5);
  NftRule by_uid;
  by_uid.verdict = Verdict::bypass;
  by_uid.uids = {1000, 1001};
  s.rules.insert(s.rules.begin(), by_uid);
  const std::string t = render(s);
  EXPECT_NE(t.find("tproxy ip to 127.0.0.1:7893 meta mark set meta mark & 0xffffff00 | 0x00000001 accept"),
            std::string::npos) << t;
  EXPECT_NE(t.find("tproxy ip6 to [::1]:7893 meta mark set meta mark & 0xffffff00 | 0x00000001 accept"), std::string::npos);
  EXPECT_NE(t.find("type route hook output priority mangle"), std::string::npos);
  EXPECT_NE(t.find("ct direction reply return"), std::string::npos);
  EXPECT_NE(t.find("meta mark & 0x000000ff == 0x000000ff return"), std::string::npos);
  EXPECT_NE(t.find("ct state new ct mark & 0xc0000000 == 0 jump decide"), std::string::npos);
  EXPECT_NE(t.find("meta skuid { 1000, 1001 } ct mark set ct mark & 0x0000ffff | 0x40050000 return"), std::string::npos);
  EXPECT_NE(t.find("ip daddr { 203.0.113.0/24 } meta l4proto tcp th dport { 443, 8000-8099 } ct mark set ct mark & "
                   "0x0000ffff | 0x80050000"),
            std::string::npos);
  EXPECT_NE(t.find("ip6 daddr { 2001:db8::/32 } meta l4proto tcp"), std::string::npos);
  EXPECT_NE(t.find("ct mark set ct mark & 0x0000ffff | 0x40050000 comment \"default\""), std::string::npos);
  // Prerouting claims only this host's own flows unless a gateway is named.
  EXPECT_NE(t.find("iif lo meta mark & 0x000000ff == 0x00000001 goto divert"), std::string::npos);
  EXPECT_EQ(t.find("goto gateway"), std::string::npos) << t;
}

TEST(NftTable, RendersTheGatewayOnlyForTheNamedInterfacesAndSources) {
  auto s = scenario_spec(1);
  s.gateway.interfaces = {"veth-lan"};
  std::string t = render(s);
  EXPECT_NE(t.find("    iifname { \"veth-lan\" } goto gateway"), std::string::npos) << t;
  s.gateway.sources = {Cidr::parse("10.9.0.0/24"), Cidr::parse("fd00:9::/64")};
  t = render(s);
  EXPECT_NE(t.find("iifname { \"veth-lan\" } ip saddr { 10.9.0.0/24 } goto gateway"), std::string::npos) << t;
  EXPECT_NE(t.find("iifname { \"veth-lan\" } ip6 saddr { fd00:9::/64 } goto gateway"), std::string::npos) << t;
  s.gateway.interfaces.clear();
  t = render(s);
  EXPECT_NE(t.find("    ip saddr { 10.9.0.0/24 } goto gateway"), std::string::npos) << t;
}

TEST(NftTable, RejectsWhatWouldLoopOrCannotBeExpressed) {
  auto s = scenario_spec(1);
  s.bypass_mark = s.fwmark;
  EXPECT_THROW(render(s), std::invalid_argument);
  EXPECT_THROW(Cidr::parse("203.0.113.0/33"), std::invalid_argument);
  EXPECT_THROW(Cidr::parse("not-an-address/8"), std::invalid_argument);
  EXPECT_EQ(Cidr::parse("2001:db8::10").to_string(), "2001:db8::10/128");
}

TEST(NftTableNeedsRootNetns, AppliesAtomicallyDetectsAndRemovesTheTable) {
  FLOWRELAY_NETNS_OR_SKIP(ns);
  auto in = ns.enter();
  NftTable nft;
  EXPECT_FALSE(nft.installed().has_value());
  EXPECT_FALSE(nft.remove());

  nft.apply(scenario_spec(1));
  auto [rc, listing] = sh("nft list table inet flowrelay");
  ASSERT_EQ(rc, 0) << listing;
  for (const char* want : {"chain prerouting", "chain output", "chain decide", "type route hook output",
                           "tproxy ip to 127.0.0.1:7893", "tproxy ip6 to [::1]:7893", "comment \"web\""})
    EXPECT_NE(listing.find(want), std::string::npos) << want << "\n" << listing;
  auto t = nft.installed();
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->epoch, 1u);
  EXPECT_EQ(t->owner_pid, ::getpid());

  nft.apply(scenario_spec(2));  // replace in place
  EXPECT_EQ(nft.installed()->epoch, 2u);

  // A transaction that fails half-way leaves the previous table exactly as it was.
  EXPECT_THROW(nft.run(render(scenario_spec(3)) + "add rule inet flowrelay decide bogus\n"), NftError);
  EXPECT_EQ(nft.installed()->epoch, 2u);

  // A table left by someone else (a crashed run) is visible as such.
  nft.run("delete table inet flowrelay\ntable inet flowrelay { comment \"flowrelay epoch=9 pid=1\"; }\n");
  EXPECT_EQ(nft.installed()->owner_pid, 1);

  EXPECT_TRUE(nft.remove());
  EXPECT_FALSE(nft.installed().has_value());
  EXPECT_NE(sh("nft list table inet flowrelay").first, 0);
}

TEST(PolicyRoutesNeedsRootNetns, InstallRefusesAUsedTableAndRemoveDeletesOnlyWhatItAdded) {
  FLOWRELAY_NETNS_OR_SKIP(ns);
  auto in = ns.enter();
  PolicyRoutes routes({.fwmark = 1, .table = 100, .fwmask = 0xff});
  EXPECT_FALSE(routes.installed());
  routes.install();
  EXPECT_TRUE(routes.installed());
  EXPECT_THROW(PolicyRoutes({.fwmark = 1, .table = 100, .fwmask = 0xff}).install(), RouteTableInUse);  // ours now
  auto count = [](const std::string& s, const std::string& what) {
    std::size_t n = 0;
    for (auto p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
    return n;
  };
  auto rules4 = sh("ip rule show").second, rules6 = sh("ip -6 rule show").second;
  EXPECT_EQ(count(rules4, "fwmark 0x1/0xff lookup 100"), 1u) << rules4;  // the bypass mark 0xff does not match
  EXPECT_EQ(count(rules6, "fwmark 0x1/0xff lookup 100"), 1u) << rules6;
  EXPECT_NE(sh("ip route show table 100").second.find("local default dev lo"), std::string::npos);
  EXPECT_NE(sh("ip -6 route show table 100").second.find("local default dev lo"), std::string::npos);

  routes.remove();
  routes.remove();
  EXPECT_FALSE(routes.installed());
  EXPECT_EQ(count(sh("ip rule show").second, "lookup 100"), 0u);
  EXPECT_EQ(sh("ip route show table 100").second, "");

  // A rule someone else made is theirs: install() uses it, remove() leaves it.
  ASSERT_EQ(sh("ip rule add fwmark 0x1/0xff lookup 100 pref 9000").first, 0);
  PolicyRoutes again({.fwmark = 1, .table = 100, .fwmask = 0xff});
  again.install();
  EXPECT_EQ(again.preexisting_rules(), std::vector<std::string>{"ip"});
  again.remove();
  EXPECT_EQ(count(sh("ip rule show").second, "fwmark 0x1/0xff lookup 100"), 1u);
  EXPECT_EQ(count(sh("ip -6 rule show").second, "lookup 100"), 0u);
  EXPECT_EQ(sh("ip route show table 100").second, "");
}

// ---- integration: real connects from the app namespace, with a stand-in relay ----------------

int transparent(int family, int type, std::uint16_t port) {
  int fd = ::socket(family, type | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(fd, family == AF_INET ? SOL_IP : SOL_IPV6, family == AF_INET ? IP_TRANSPARENT : IPV6_TRANSPARENT, &one, sizeof one);
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  auto a = make_addr(family == AF_INET ? "127.0.0.1" : "::1", port);
  EXPECT_EQ(::bind(fd, a.sa(), a.len), 0) << std::strerror(errno);
  if (type == SOCK_STREAM) ::listen(fd, 64);
  return fd;
}

struct Relay {
  int tcp4, tcp6, udp4, udp6;
  Relay()
      : tcp4(transparent(AF_INET, SOCK_STREAM, kTproxyPort)), tcp6(transparent(AF_INET6, SOCK_STREAM, kTproxyPort)),
        udp4(transparent(AF_INET, SOCK_DGRAM, kTproxyPort)), udp6(transparent(AF_INET6, SOCK_DGRAM, kTproxyPort)) {}
  ~Relay() { for (int fd : {tcp4, tcp6, udp4, udp6}) ::close(fd); }
  int tcp(const std::string& ip) const { return ip.find(':') == std::string::npos ? tcp4 : tcp6; }
  int udp(const std::string& ip) const { return ip.find(':') == std::string::npos ? udp4 : udp6; }
};

/// Sets up the app namespace the way `flowrelay run` will: table + policy routes + relay sockets.
struct Installed {
  NftTable nft;
  PolicyRoutes routes{{.fwmark = 1, .table = 100}};
  Relay relay;
  explicit Installed(const NftTableSpec& spec) {
    nft.apply(spec);
    routes.install();
  }
};

/// Connects from the app namespace; says where the connection was accepted. `fd_out` keeps the client.
Landed tcp_lands(const Relay& r, const std::string& ip, int world_listener, std::uint16_t port,
                 int* fd_out = nullptr, std::uint32_t so_mark = 0, bool as_app = false, int* accepted_out = nullptr) {
  auto dst = make_addr(ip, port);
  if (as_app) ::setfsuid(kAppUid);
  int fd = ::socket(dst.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (as_app) ::setfsuid(0);
  if (so_mark != 0) ::setsockopt(fd, SOL_SOCKET, SO_MARK, &so_mark, sizeof so_mark);
  if (::connect(fd, dst.sa(), dst.len) != 0) {
    ADD_FAILURE() << "connect " << ip << ":" << port << ": " << std::strerror(errno);
    ::close(fd);
    return Landed::nowhere;
  }
  Landed l = landed(r.tcp(ip), world_listener);
  int accepted = ::accept4(l == Landed::relay ? r.tcp(ip) : world_listener, nullptr, nullptr, SOCK_CLOEXEC);
  if (l == Landed::relay) {
    // The relay's accepted socket is addressed as the app meant it: local = original destination.
    auto orig = local_addr(accepted);
    EXPECT_EQ(orig.port(), port);
    EXPECT_EQ(std::memcmp(&orig.ss, &dst.ss, dst.len), 0) << "original destination lost";
  }
  if (accepted_out) *accepted_out = accepted; else ::close(accepted);
  if (fd_out) *fd_out = fd; else ::close(fd);
  return l;
}

Landed udp_lands(const Relay& r, const std::string& ip, int world_socket, std::uint16_t port) {
  int fd = udp_socket(ip.find(':') == std::string::npos ? "0.0.0.0" : "::");
  auto dst = make_addr(ip, port);
  EXPECT_EQ(::sendto(fd, "x", 1, 0, dst.sa(), dst.len), 1) << std::strerror(errno);
  Landed l = landed(r.udp(ip), world_socket);
  char b[16];
  if (l != Landed::nowhere) ::recv(l == Landed::relay ? r.udp(ip) : world_socket, b, sizeof b, 0);
  ::close(fd);
  return l;
}

TEST(NftTableNeedsRootNetns, ClaimedTcpLandsOnTransparentListenerBypassedReachesTheWorld) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  auto in = w.app.enter();
  Installed inst(scenario_spec(1));
  for (std::string ip : {kWorldV4, kWorldV6}) {
    SCOPED_TRACE(ip);
    EXPECT_EQ(to_string(tcp_lands(inst.relay, ip, w.tcp443, 443)), std::string("relay"));
    EXPECT_EQ(to_string(tcp_lands(inst.relay, ip, w.tcp80, 80)), std::string("world"));
  }
}

TEST(NftTableNeedsRootNetns, ClaimedUdpLandsOnTransparentSocketBypassedReachesTheWorld) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  auto in = w.app.enter();
  Installed inst(scenario_spec(1));
  for (std::string ip : {kWorldV4, kWorldV6}) {
    SCOPED_TRACE(ip);
    EXPECT_EQ(to_string(udp_lands(inst.relay, ip, w.udp5353, 5353)), std::string("relay"));
    EXPECT_EQ(to_string(udp_lands(inst.relay, ip, w.udp5354, 5354)), std::string("world"));
  }
}

TEST(NftTableNeedsRootNetns, RelayUpstreamSocketsWithTheBypassMarkAreNeverClaimed) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  auto in = w.app.enter();
  auto spec = scenario_spec(1);
  Installed inst(spec);
  for (std::string ip : {kWorldV4, kWorldV6}) {
    SCOPED_TRACE(ip);
    EXPECT_EQ(to_string(tcp_lands(inst.relay, ip, w.tcp443, 443, nullptr, spec.bypass_mark)), std::string("world"));
  }
}

TEST(NftTableNeedsRootNetns, UidRulesMatchTheSocketOwner) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  auto in = w.app.enter();
  auto spec = scenario_spec(1);
  NftRule app_bypass;
  app_bypass.name = "app-uid";
  app_bypass.verdict = Verdict::bypass;
  app_bypass.uids = {kAppUid};
  spec.rules.insert(spec.rules.begin(), app_bypass);
  Installed inst(spec);
  for (std::string ip : {kWorldV4, kWorldV6}) {
    SCOPED_TRACE(ip);
    EXPECT_EQ(to_string(tcp_lands(inst.relay, ip, w.tcp443, 443, nullptr, 0, true)), std::string("world"));
    EXPECT_EQ(to_string(tcp_lands(inst.relay, ip, w.tcp443, 443)), std::string("relay"));
  }
}

TEST(NftTableNeedsRootNetns, VerdictsAreStickyAcrossEpochsAndRecordedInTheConntrackMark) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  auto in = w.app.enter();
  Installed inst(scenario_spec(1));
  // Epoch 1 bypasses :80. Hold a flow open, then epoch 2 claims :80 too.
  int old_flow = -1, old_world_side = -1;
  ASSERT_EQ(tcp_lands(inst.relay, kWorldV4, w.tcp80, 80, &old_flow, 0, false, &old_world_side), Landed::world);
  auto spec2 = scenario_spec(2);
  spec2.rules[0].ports.push_back({80, 80});
  inst.nft.apply(spec2);

  Conntrack ct;
  auto app = local_addr(old_flow);
  relay::Endpoint src{boost::asio::ip::make_address("192.0.2.1"), app.port()};
  relay::Endpoint dst{boost::asio::ip::make_address(kWorldV4), 80};
  auto e = ct.find(relay::Proto::tcp, src, dst);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(CtMark::verdict(e->mark), Verdict::bypass);
  EXPECT_EQ(CtMark::epoch(e->mark), 1u);

  // The old flow keeps going to the world (its verdict is sticky) ...
  ASSERT_TRUE(send_all(old_flow, "still-bypassed"));
  EXPECT_EQ(recv_n(old_world_side, 14), "still-bypassed");
  ::close(old_world_side);
  // ... while a new flow to :80 is claimed under epoch 2.
  int new_flow = -1;
  EXPECT_EQ(to_string(tcp_lands(inst.relay, kWorldV4, w.tcp80, 80, &new_flow)), std::string("relay"));
  auto napp = local_addr(new_flow);
  auto e2 = ct.find(relay::Proto::tcp, {src.address, napp.port()}, dst);
  ASSERT_TRUE(e2.has_value());
  EXPECT_EQ(e2->mark, CtMark::encode(Verdict::claim, 2));
  ::close(old_flow);
  ::close(new_flow);
}

}  // namespace
}  // namespace flowrelay::linux_host
