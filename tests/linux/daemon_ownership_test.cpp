// `flowrelay run` owns only what it made (DESIGN.md, "Security model"): a second daemon never
// displaces or dismantles a running one, a route table in use is refused, another tool's rule and
// mark bits survive. Every test runs the real binary in private namespaces and judges from outside:
// `nft list`, `ip rule`, `ip route show table`, the kernel's conntrack table, the far server.
#include "tests/linux/daemon_harness.hpp"

#include "extension/linux/conntrack.hpp"
#include "extension/linux/ct_mark.hpp"

#include <gtest/gtest.h>

#include <regex>

namespace flowrelay::linux_host {
namespace {

using namespace testing;

std::string claim_config(const std::string& socket, const std::string& udp_rule = "") {
  return R"({"default": "bypass", "rules": [
      {"name": "web", "verdict": "claim", "proto": "tcp", "dst": ["203.0.113.0/24"], "ports": [443]})" +
         udp_rule + R"(],
    "reclaim": {"policy": "surgical", "debounce_ms": 20, "drain_ms": 100},
    "control": {"socket": ")" + socket + R"("}})";
}

/// What the app namespace shows of flowrelay's objects (table 100 is the default route_table).
struct Objects {
  std::string table, rules, routes;
  friend bool operator==(const Objects&, const Objects&) = default;
};

Objects objects(const World& w) {
  auto in = w.app.enter();
  auto [rc, table] = sh("nft list table inet flowrelay");
  return {rc == 0 ? table : "", sh("ip rule list; ip -6 rule list").second,
          sh("ip route show table 100; ip -6 route show table 100").second};
}

std::string describe(const Objects& o) { return o.table + "\n--- rules ---\n" + o.rules + "--- table 100 ---\n" + o.routes; }

/// One TCP round trip from the app namespace to the world's echo on :443.
bool tcp_echo(const World& w, const std::string& msg) {
  auto in = w.app.enter();
  int fd = tcp_connect_within(kWorldV4, 443, 3000);
  if (fd < 0) return false;
  const bool ok = send_all(fd, msg) && recv_n(fd, msg.size()) == msg;
  ::close(fd);
  return ok;
}

int adopted(const Daemon& d) {
  auto f = d.flows();
  return f.is_object() ? f.as_object().at("relay").as_object().at("adopted").to_number<int>() : -1;
}

TEST(DaemonOwnershipNeedsRootNetns, ASecondDaemonIsRefusedWithOrWithoutReplaceAndTheFirstKeepsEverything) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  EchoWorld echo(w);
  TempDir dir;
  const auto config = dir.file("c.json"), socket = dir.file("c.sock");
  write_config(config, claim_config(socket));
  Daemon a(w.app, config, socket, dir.file("a.log"));
  ASSERT_TRUE(a.wait_ready()) << a.log();
  ASSERT_TRUE(tcp_echo(w, "via A"));
  ASSERT_TRUE(eventually([&] { return adopted(a) == 1; })) << a.log();
  const Objects before = objects(w);
  ASSERT_NE(before.table.find("pid=" + std::to_string(a.pid())), std::string::npos) << describe(before);
  ASSERT_NE(before.rules.find("lookup 100"), std::string::npos) << describe(before);
  ASSERT_NE(before.routes.find("local default dev lo"), std::string::npos) << describe(before);

  for (const std::vector<std::string>& extra : {std::vector<std::string>{}, {"--replace"}}) {
    SCOPED_TRACE(extra.empty() ? "without --replace" : "with --replace");
    Daemon b(w.app, config, socket, dir.file(extra.empty() ? "b.log" : "b-replace.log"), extra);
    EXPECT_EQ(b.wait_exit(), 1) << b.log();
    EXPECT_NE(b.log().find("belongs to a running flowrelay (owner pid " + std::to_string(a.pid())), std::string::npos)
        << b.log();
    if (!extra.empty()) {
      EXPECT_NE(b.log().find("--replace never displaces a live owner"), std::string::npos) << b.log();
    }
    const Objects after = objects(w);
    EXPECT_EQ(after, before) << "before:\n" << describe(before) << "\nafter:\n" << describe(after);
  }
  // A still relays, and answers on its control socket.
  EXPECT_TRUE(tcp_echo(w, "still via A"));
  EXPECT_TRUE(eventually([&] { return adopted(a) == 2; })) << a.log();
  EXPECT_EQ(a.terminate(), 0) << a.log();
  const Objects gone = objects(w);
  EXPECT_EQ(gone.table, "") << describe(gone);
  EXPECT_EQ(gone.rules.find("lookup 100"), std::string::npos) << describe(gone);
  EXPECT_EQ(gone.routes, "") << describe(gone);
}

TEST(DaemonOwnershipNeedsRootNetns, ARouteTableAlreadyInUseIsRefusedByNameAndItsRouteSurvives) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  TempDir dir;
  const auto config = dir.file("c.json"), socket = dir.file("c.sock");
  write_config(config, claim_config(socket));
  {
    auto in = w.app.enter();
    ASSERT_EQ(sh("ip route add 198.51.100.0/24 dev va table 100").first, 0);  // another tool's table 100
  }
  Daemon d(w.app, config, socket, dir.file("d.log"));
  EXPECT_EQ(d.wait_exit(), 1) << d.log();
  EXPECT_NE(d.log().find("route table 100 is in use"), std::string::npos) << d.log();
  EXPECT_NE(d.log().find("198.51.100.0/24"), std::string::npos) << d.log();
  const Objects after = objects(w);
  EXPECT_NE(after.routes.find("198.51.100.0/24 dev va"), std::string::npos) << describe(after);
  EXPECT_EQ(after.routes.find("local default"), std::string::npos) << describe(after);
  EXPECT_EQ(after.table, "") << describe(after);
  EXPECT_EQ(after.rules.find("lookup 100"), std::string::npos) << describe(after);
}

TEST(DaemonOwnershipNeedsRootNetns, AnIdenticalIpRuleMadeByAnotherToolSurvivesTheDaemon) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  EchoWorld echo(w);
  TempDir dir;
  const auto config = dir.file("c.json"), socket = dir.file("c.sock");
  write_config(config, claim_config(socket));
  // The rule this daemon adds (fwmark/mask of fwmark|bypass_mark) and the exact-mark one earlier
  // releases added, both made beforehand by "another tool", in both families.
  const std::string rules[] = {"fwmark 0x1/0xff lookup 100", "fwmark 0x1 lookup 100"};
  {
    auto in = w.app.enter();
    for (const auto& r : rules)
      for (const char* ip : {"ip", "ip -6"}) ASSERT_EQ(sh(std::string(ip) + " rule add " + r + " pref 9000").first, 0) << r;
  }
  Daemon d(w.app, config, socket, dir.file("d.log"));
  ASSERT_TRUE(d.wait_ready()) << d.log();
  EXPECT_TRUE(tcp_echo(w, "claimed all the same"));
  EXPECT_TRUE(eventually([&] { return adopted(d) == 1; })) << d.log();
  EXPECT_EQ(d.terminate(), 0) << d.log();
  const Objects after = objects(w);
  for (const auto& r : rules) {
    std::size_t n = 0;
    for (auto p = after.rules.find(r + "\n"); p != std::string::npos; p = after.rules.find(r + "\n", p + 1)) ++n;
    EXPECT_EQ(n, 2u) << r << " (one per family)\n" << describe(after);
  }
  EXPECT_EQ(after.routes, "") << describe(after);  // the route was the daemon's: gone
  EXPECT_EQ(after.table, "") << describe(after);
}

/// Packets of `comment`'s rule in `nft list table inet othertool`, -1 if absent.
long counted(const World& w, const std::string& comment) {
  auto in = w.app.enter();
  const auto listing = sh("nft list table inet othertool").second;
  std::smatch m;
  if (!std::regex_search(listing, m, std::regex("counter packets ([0-9]+) bytes [0-9]+ comment \"" + comment + "\"")))
    return -1;
  return std::stol(m[1]);
}

// Another tool marks packets (meta mark 0x100) and connections (ct mark 0x2 before flowrelay
// decides, 0x1 after): flowrelay's rules and its conntrack re-mark keep those bits. (-180: after
// conntrack made the entry at -200, before flowrelay's mangle chains at -150.)
TEST(DaemonOwnershipNeedsRootNetns, OtherToolsMarkBitsSurviveTheDaemonsRulesAndReMarks) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  EchoWorld echo(w);
  TempDir dir;
  const auto config = dir.file("c.json"), socket = dir.file("c.sock");
  write_config(config, claim_config(socket));
  {
    auto in = w.app.enter();
    auto [rc, out] = sh(R"(nft -f - <<'EOF'
table inet othertool {
  chain first { type route hook output priority -180; policy accept;
    meta mark set meta mark | 0x100
    ct state new ct mark set ct mark | 0x2
  }
  chain last { type filter hook output priority 0; policy accept;
    ct state new ct mark set ct mark | 0x1
  }
  chain post { type filter hook postrouting priority 300; policy accept;
    ip daddr 203.0.113.10 tcp dport 443 counter comment "tcp443"
    ip daddr 203.0.113.10 tcp dport 443 meta mark & 0x100 == 0x100 ct mark & 0x3 == 0x3 counter comment "tcp443-bits"
  }
}
EOF)");
    ASSERT_EQ(rc, 0) << out;
  }
  Daemon d(w.app, config, socket, dir.file("d.log"));
  ASSERT_TRUE(d.wait_ready()) << d.log();

  // TCP :443 is claimed by the rules (meta mark and ct mark set in nft): the bits survive, and the
  // flow is still relayed (the policy rule tests only flowrelay's bits).
  EXPECT_TRUE(tcp_echo(w, "marked by two tools"));
  EXPECT_TRUE(eventually([&] { return adopted(d) == 1; })) << d.log();
  EXPECT_GT(counted(w, "tcp443"), 0);
  EXPECT_EQ(counted(w, "tcp443-bits"), counted(w, "tcp443"));

  // UDP :5353 is bypassed by epoch 1, then reclaimed by a conntrack re-mark under epoch 2.
  int app = -1;
  {
    auto in = w.app.enter();
    app = udp_socket("0.0.0.0");
    auto dst = make_addr(kWorldV4, 5353);
    ASSERT_EQ(::connect(app, dst.sa(), dst.len), 0);
  }
  ASSERT_TRUE(send_all(app, "one"));
  ASSERT_EQ(recv_n(app, 3), "one");
  const relay::Endpoint src{boost::asio::ip::make_address("192.0.2.1"), local_addr(app).port()};
  const relay::Endpoint dst{boost::asio::ip::make_address(kWorldV4), 5353};
  auto mark = [&] {
    auto in = w.app.enter();
    auto e = Conntrack().find(relay::Proto::udp, src, dst);
    return e ? e->mark : 0u;
  };
  ASSERT_EQ(mark() & 0x3u, 0x3u);
  ASSERT_EQ(CtMark::verdict(mark()), Verdict::bypass);
  write_config(config, claim_config(socket, R"(, {"name": "dns", "verdict": "claim", "proto": "udp", "dst": ["203.0.113.0/24"], "ports": [5353]})"));
  EXPECT_TRUE(eventually([&] { return CtMark::verdict(mark()) == Verdict::claim; })) << d.log();
  EXPECT_EQ(CtMark::epoch(mark()), 2u);
  EXPECT_EQ(mark() & 0x3u, 0x3u) << std::hex << mark();
  ASSERT_TRUE(send_all(app, "two"));
  EXPECT_EQ(recv_n(app, 3), "two");  // now through the relay
  EXPECT_TRUE(eventually([&] { return adopted(d) == 2; })) << d.log();
  ::close(app);
  EXPECT_EQ(d.terminate(), 0) << d.log();
}

TEST(DaemonOwnershipNeedsRootNetns, ATableAndRoutesRemovedUnderItAreBackWithinSecondsAndClaimAgain) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  EchoWorld echo(w);
  TempDir dir;
  const auto config = dir.file("c.json"), socket = dir.file("c.sock");
  write_config(config, claim_config(socket));
  Daemon d(w.app, config, socket, dir.file("daemon.log"));
  ASSERT_TRUE(d.wait_ready()) << d.log();
  const Objects installed = objects(w);
  ASSERT_FALSE(installed.table.empty()) << describe(installed);
  {
    auto in = w.app.enter();  // what a careless operator or another tool does
    ASSERT_EQ(sh("nft flush ruleset").first, 0);
    ASSERT_EQ(sh("ip route flush table 100; ip -6 route flush table 100").first, 0);
  }
  ASSERT_TRUE(objects(w).table.empty());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  Objects now = objects(w);
  while (!(now == installed) && std::chrono::steady_clock::now() < deadline) now = objects(w);
  EXPECT_EQ(now, installed) << describe(now) << "\n=== was ===\n" << describe(installed) << d.log();
  const int before = adopted(d);
  EXPECT_TRUE(tcp_echo(w, "claimed again")) << d.log();
  EXPECT_EQ(adopted(d), before + 1) << d.log();  // through the relay, not around it
  EXPECT_GE(d.flows().as_object().at("host").as_object().at("tables_reinstalled").to_number<int>(), 1);
  EXPECT_EQ(d.terminate(), 0) << d.log();
  EXPECT_TRUE(objects(w).table.empty());  // and it still removes what it put back
}

}  // namespace
}  // namespace flowrelay::linux_host
