// `flowrelay run` end to end (issue 4): the binary runs in a private app namespace, destinations
// echo in a private world namespace, apps hold long-lived TCP and UDP flows over IPv4 and IPv6 and
// check every byte while the config file changes under the daemon.
#include "tests/linux/daemon_harness.hpp"

#include "extension/control/epoch_report.hpp"
#include "extension/linux/nft_table.hpp"
#include "extension/linux/policy_routes.hpp"

#include <gtest/gtest.h>

namespace flowrelay::linux_host {
namespace {

using namespace testing;

constexpr int kPerKind = 3;  // flows per (kind, family)

std::vector<AppFlow> scenario_flows() {
  std::vector<AppFlow> flows;
  for (const char* ip : {kWorldV4, kWorldV6})
    for (int i = 0; i < kPerKind; ++i) {
      flows.push_back(app_flow(ip, 443));
      flows.push_back(app_flow(ip, 80));
      flows.push_back(app_flow(ip, 5353, true));
    }
  return flows;
}

/// Every flow of `port` (TCP or UDP) is seen by the daemon as `verdict` under `epoch`.
bool all_seen(const Daemon& d, const Traffic& t, std::uint16_t port, bool udp, const std::string& verdict,
              std::int64_t epoch) {
  const auto seen = seen_by_src(d.flows(), udp ? "udp" : "tcp");
  for (const auto& f : t.flows()) {
    if (f.port != port || f.udp != udp) continue;
    auto it = seen.find(flow_key(f));
    if (it == seen.end() || it->second.verdict != verdict || (epoch >= 0 && it->second.epoch != epoch)) return false;
  }
  return true;
}

std::string describe(const Daemon& d) { return boost::json::serialize(d.flows()) + "\n--- daemon log ---\n" + d.log(); }

std::string describe(const Traffic& t) {
  std::string out;
  for (const auto& f : t.flows())
    out += f.ip + ":" + std::to_string(f.port) + (f.udp ? "/udp " : "/tcp ") + f.local + " reconnects " +
           std::to_string(f.reconnects) + " lost " + std::to_string(f.lost) + " ok " + std::to_string(f.bytes_ok) +
           " slowest connect " + std::to_string(f.max_connect_ms) + " ms, slowest echo " + std::to_string(f.max_echo_ms) + " ms\n";
  return out;
}

struct Scenario {
  World& w;
  TempDir dir;
  std::string config = dir.file("flowrelay.json");
  std::string socket = dir.file("control.sock");
  std::unique_ptr<EchoWorld> echo;
  std::unique_ptr<Daemon> daemon;
  std::unique_ptr<Traffic> traffic;

  explicit Scenario(World& world, const std::string& policy) : w(world) {
    echo = std::make_unique<EchoWorld>(w);
    write_config(config, config_text(policy, {443}, {}, socket));  // epoch A: claim TCP 443
    daemon = std::make_unique<Daemon>(w.app, config, socket, dir.file("daemon.log"));
  }
  bool start() {
    if (!daemon->wait_ready()) return false;
    traffic = std::make_unique<Traffic>(w.app, scenario_flows());
    return traffic->wait_rounds(3);
  }
};

void expect_untouched_443(const Traffic& t) {
  for (const auto& f : t.flows()) {
    if (f.port != 443) continue;
    SCOPED_TRACE(f.ip + " " + f.local);
    EXPECT_EQ(f.reconnects, 0);
    EXPECT_EQ(f.mismatches, 0);
    EXPECT_GT(f.bytes_ok, 0u);
  }
}

void expect_no_corruption(const Traffic& t) {
  for (const auto& f : t.flows()) {
    SCOPED_TRACE(f.ip + ":" + std::to_string(f.port) + (f.udp ? "/udp " : "/tcp ") + f.local);
    EXPECT_EQ(f.mismatches, 0);
  }
}

TEST(DaemonNeedsRootNetns, SurgicalReclaimMovesExactlyTheFlippedFlowsWithinOneSecondThenEpochCReleases) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  Scenario s(w, "surgical");
  ASSERT_TRUE(s.start()) << s.daemon->log();
  Daemon& d = *s.daemon;
  Traffic& t = *s.traffic;

  ASSERT_TRUE(eventually([&] { return all_seen(d, t, 443, false, "claim", 1); })) << describe(d);
  ASSERT_TRUE(eventually([&] { return all_seen(d, t, 80, false, "bypass", 1); })) << describe(d);
  ASSERT_TRUE(eventually([&] { return all_seen(d, t, 5353, true, "bypass", 1); })) << describe(d);

  // Epoch B also claims TCP 80 and UDP 5353.
  const auto written = Clock::now();
  const auto written_wall = std::chrono::system_clock::now();
  write_config(s.config, config_text("surgical", {443, 80}, {5353}, s.socket));
  std::string trail;
  ASSERT_TRUE(eventually([&] {
    const auto t0 = Clock::now();
    const bool tcp = all_seen(d, t, 80, false, "claim", 2);
    const bool udp = all_seen(d, t, 5353, true, "claim", 2);
    trail += std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(t0 - written).count()) + ":" +
             (tcp ? "T" : "t") + (udp ? "U" : "u") + " ";
    return tcp && udp;
  }, 5000, 5)) << describe(d);
  const auto took = Clock::now() - written;
  if (took > std::chrono::seconds(1)) ADD_FAILURE() << trail;
  std::printf("file write -> every flipped flow claimed under epoch 2: %lld ms\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()));
  EXPECT_LE(took, std::chrono::seconds(1))
      << "written at " << control::format_time(written_wall) << "\n" << describe(t) << describe(d);
  ASSERT_TRUE(t.wait_rounds(5));
  for (const auto& f : t.flows()) {
    SCOPED_TRACE(f.ip + ":" + std::to_string(f.port) + " " + f.local);
    if (f.port == 80) {
      EXPECT_EQ(f.reconnects, 1);  // closed exactly once, reconnected, claimed
    }
    if (f.udp) {
      EXPECT_EQ(f.reconnects, 0);  // UDP moved without the app noticing
    }
  }
  expect_untouched_443(t);
  expect_no_corruption(t);
  EXPECT_TRUE(all_seen(d, t, 443, false, "claim", 1));  // never re-decided

  // Epoch C narrows the claim back to TCP 443: the :80 and :5353 flows are released after drain_ms.
  write_config(s.config, config_text("surgical", {443}, {}, s.socket));
  ASSERT_TRUE(eventually([&] {
    return all_seen(d, t, 80, false, "bypass", 3) && all_seen(d, t, 5353, true, "bypass", 3);
  }, 5000, 5)) << describe(d);
  ASSERT_TRUE(t.wait_rounds(5));
  for (const auto& f : t.flows()) {
    if (f.port == 80) {
      EXPECT_EQ(f.reconnects, 2) << f.local;
    }
  }
  expect_untouched_443(t);
  expect_no_corruption(t);
  t.stop();
  EXPECT_EQ(d.terminate(), 0) << d.log();
}

TEST(DaemonNeedsRootNetns, KeepPolicyClosesNothingAndNewFlowsFollowTheNewEpoch) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  Scenario s(w, "keep");
  ASSERT_TRUE(s.start()) << s.daemon->log();
  Daemon& d = *s.daemon;
  Traffic& t = *s.traffic;
  ASSERT_TRUE(eventually([&] { return all_seen(d, t, 80, false, "bypass", 1); })) << describe(d);

  write_config(s.config, config_text("keep", {443, 80}, {5353}, s.socket));
  ASSERT_TRUE(eventually([&] { return d.current_epoch() == 2; })) << d.log();
  ASSERT_TRUE(t.wait_rounds(5));
  for (const auto& f : t.flows()) EXPECT_EQ(f.reconnects, 0) << f.local;
  EXPECT_TRUE(all_seen(d, t, 80, false, "bypass", 1)) << describe(d);
  EXPECT_TRUE(all_seen(d, t, 5353, true, "bypass", 1)) << describe(d);
  expect_untouched_443(t);
  expect_no_corruption(t);

  // A new flow to :80 follows B.
  Traffic fresh(w.app, {app_flow(kWorldV4, 80), app_flow(kWorldV6, 80)});
  ASSERT_TRUE(fresh.wait_rounds(2));
  EXPECT_TRUE(eventually([&] { return all_seen(d, fresh, 80, false, "claim", 2); })) << describe(d);
  fresh.stop();
  t.stop();
  EXPECT_EQ(d.terminate(), 0) << d.log();
}

TEST(DaemonNeedsRootNetns, RestartPolicyClosesEveryFlowOnceAndAllComeBackUnderTheNewEpoch) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  Scenario s(w, "restart");
  ASSERT_TRUE(s.start()) << s.daemon->log();
  Daemon& d = *s.daemon;
  Traffic& t = *s.traffic;
  ASSERT_TRUE(eventually([&] { return all_seen(d, t, 443, false, "claim", 1); })) << describe(d);

  write_config(s.config, config_text("restart", {443, 80}, {5353}, s.socket));
  ASSERT_TRUE(eventually([&] {
    return all_seen(d, t, 443, false, "claim", 2) && all_seen(d, t, 80, false, "claim", 2) &&
           all_seen(d, t, 5353, true, "claim", 2);
  }, 5000, 5)) << describe(d);
  ASSERT_TRUE(t.wait_rounds(5));
  for (const auto& f : t.flows()) {
    SCOPED_TRACE(f.ip + ":" + std::to_string(f.port) + " " + f.local);
    EXPECT_EQ(f.reconnects, f.udp ? 0 : 1);  // every TCP flow closed exactly once
  }
  expect_no_corruption(t);
  auto e = d.epochs();
  bool restarted = false;
  for (const auto& c : e.as_object().at("cycles").as_array())
    if (c.as_object().at("to").to_number<int>() == 2) restarted = c.as_object().at("restarted").as_bool();
  EXPECT_TRUE(restarted) << boost::json::serialize(e);
  t.stop();
  EXPECT_EQ(d.terminate(), 0) << d.log();
}

TEST(DaemonNeedsRootNetns, BadConfigOverARunningOneKeepsTheEpochAndTouchesNoFlow) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  Scenario s(w, "surgical");
  ASSERT_TRUE(s.start()) << s.daemon->log();
  Daemon& d = *s.daemon;
  Traffic& t = *s.traffic;
  ASSERT_TRUE(eventually([&] { return all_seen(d, t, 443, false, "claim", 1); })) << describe(d);

  write_config(s.config, R"({"rules": [{"verdict": "claim", "proto": "tcp", "ports": [70000]}]})");
  std::string error;
  ASSERT_TRUE(eventually([&] {
    auto e = d.epochs();
    if (!e.is_object()) return false;
    for (const auto& h : e.as_object().at("history").as_array())
      if (h.as_object().at("kind").as_string() == "rejected") {
        error = boost::json::serialize(h.as_object().at("error"));
        return true;
      }
    return false;
  })) << d.log();
  EXPECT_NE(error.find("rules[0].ports[0]"), std::string::npos) << error;
  EXPECT_EQ(d.current_epoch(), 1);
  ASSERT_TRUE(t.wait_rounds(5));
  for (const auto& f : t.flows()) EXPECT_EQ(f.reconnects, 0) << f.local;
  EXPECT_TRUE(all_seen(d, t, 443, false, "claim", 1));
  EXPECT_TRUE(all_seen(d, t, 80, false, "bypass", 1));
  expect_no_corruption(t);
  t.stop();
  EXPECT_EQ(d.terminate(), 0) << d.log();
}

TEST(DaemonNeedsRootNetns, RelayUpstreamSocketsAreNeverClaimedAgain) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  EchoWorld echo(w);
  TempDir dir;
  const auto config = dir.file("c.json"), socket = dir.file("c.sock");
  // Claims every TCP and UDP flow to the world: the relay's own upstream connections match too.
  write_config(config, config_text("surgical", {443, 80}, {5353}, socket));
  Daemon d(w.app, config, socket, dir.file("daemon.log"));
  ASSERT_TRUE(d.wait_ready()) << d.log();
  Traffic t(w.app, {app_flow(kWorldV4, 443), app_flow(kWorldV6, 443),
                    app_flow(kWorldV4, 5353, true)});
  ASSERT_TRUE(t.wait_rounds(5));
  auto f = d.flows();
  const auto& relay = f.as_object().at("relay").as_object();
  EXPECT_EQ(relay.at("adopted").to_number<int>(), 3) << describe(d);  // one per app flow, no loop
  EXPECT_EQ(f.as_object().at("claimed").to_number<int>(), 3) << describe(d);
  EXPECT_EQ(echo.accepted(), 2u);  // the world saw exactly the two upstream connections
  for (const auto& a : t.flows()) {
    EXPECT_EQ(a.reconnects, 0);
    EXPECT_EQ(a.lost, 0);
    EXPECT_EQ(a.mismatches, 0);
  }
  t.stop();
  EXPECT_EQ(d.terminate(), 0) << d.log();
}

// The TPROXY listener is an ordinary socket on 127.0.0.1:P / [::1]:P: a process connecting to it
// directly must not make the relay dial the listener again (a connection storm).
TEST(DaemonNeedsRootNetns, DirectConnectionsToTheTproxySocketsAreRefusedNotRelayed) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  EchoWorld echo(w);
  TempDir dir;
  const auto config = dir.file("c.json"), socket = dir.file("c.sock");
  write_config(config, config_text("surgical", {443}, {5353}, socket));
  Daemon d(w.app, config, socket, dir.file("daemon.log"));
  ASSERT_TRUE(d.wait_ready()) << d.log();
  {
    auto in = w.app.enter();
    for (const char* ip : {"127.0.0.1", "::1"}) {
      int fd = tcp_connect(ip, 7893);
      ASSERT_GE(fd, 0) << ip;
      ASSERT_TRUE(wait_readable(fd));
      char b;
      EXPECT_LE(::recv(fd, &b, 1, 0), 0) << ip;  // closed by the relay
      ::close(fd);
      int u = udp_socket(ip);
      auto a = make_addr(ip, 7893);
      ::sendto(u, "x", 1, 0, a.sa(), a.len);
      ::close(u);
    }
  }
  ASSERT_TRUE(eventually([&] {
    auto f = d.flows();
    return f.is_object() && f.as_object().at("source").as_object().at("not_diverted").to_number<int>() == 4;
  })) << describe(d);
  EXPECT_EQ(d.flows().as_object().at("relay").as_object().at("adopted").to_number<int>(), 0);
  EXPECT_EQ(d.terminate(), 0) << d.log();
}

TEST(DaemonNeedsRootNetns, StaleTableAfterSigkillIsReportedAndReplaceRecovers) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  EchoWorld echo(w);
  TempDir dir;
  const auto config = dir.file("c.json"), socket = dir.file("c.sock");
  write_config(config, config_text("surgical", {443}, {}, socket));
  {
    Daemon crashed(w.app, config, socket, dir.file("crashed.log"));
    ASSERT_TRUE(crashed.wait_ready()) << crashed.log();
    crashed.kill9();
  }
  {
    auto in = w.app.enter();
    ASSERT_TRUE(NftTable().installed().has_value());  // what a crash leaves behind
  }
  Daemon refused(w.app, config, socket, dir.file("refused.log"));
  EXPECT_EQ(refused.wait_exit(), 1);
  EXPECT_NE(refused.log().find("stale"), std::string::npos) << refused.log();
  EXPECT_NE(refused.log().find("--replace"), std::string::npos) << refused.log();

  Daemon d(w.app, config, socket, dir.file("replace.log"), {"--replace"});
  ASSERT_TRUE(d.wait_ready()) << d.log();
  Traffic t(w.app, {app_flow(kWorldV4, 443), app_flow(kWorldV6, 443)});
  ASSERT_TRUE(t.wait_rounds(3));
  EXPECT_TRUE(all_seen(d, t, 443, false, "claim", 1)) << describe(d);
  t.stop();
  EXPECT_EQ(d.terminate(), 0) << d.log();
  auto in = w.app.enter();
  EXPECT_FALSE(NftTable().installed().has_value());  // SIGTERM removes the table...
  EXPECT_FALSE(PolicyRoutes({.fwmark = 1, .table = 100}).installed());  // ...and the routes
}

TEST(DaemonNeedsRootNetns, TwoThousandConcurrentClaimedFlowsKeepEveryByte) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  EchoWorld echo(w);
  TempDir dir;
  const auto config = dir.file("c.json"), socket = dir.file("c.sock");
  write_config(config, config_text("surgical", {443}, {}, socket));
  Daemon d(w.app, config, socket, dir.file("daemon.log"));
  ASSERT_TRUE(d.wait_ready()) << d.log();

  constexpr int kFlows = 2000;
  std::vector<int> fds;
  {
    auto in = w.app.enter();
    for (int i = 0; i < kFlows; ++i) {
      int fd = tcp_connect(i % 2 ? kWorldV6 : kWorldV4, 443);
      ASSERT_GE(fd, 0) << i << ": " << std::strerror(errno);
      fds.push_back(fd);
    }
  }
  auto payload = [](int i) {
    std::string s(4096, '\0');
    for (std::size_t k = 0; k < s.size(); ++k) s[k] = static_cast<char>((i * 2654435761u + k * 31) >> 3);
    return s;
  };
  for (int i = 0; i < kFlows; ++i) ASSERT_TRUE(send_all(fds[i], payload(i))) << i;
  ASSERT_TRUE(eventually([&] {
    auto f = d.flows();
    return f.is_object() && f.as_object().at("claimed").to_number<int>() == kFlows;
  }, 20000, 50)) << boost::json::serialize(d.flows().as_object().at("relay"));
  int bad = 0;
  std::string first_bad;
  for (int i = 0; i < kFlows; ++i) {
    const auto back = recv_n(fds[i], 4096, 10000);
    if (back == payload(i)) continue;
    if (bad++ == 0) first_bad = "flow " + std::to_string(i) + ": " + std::to_string(back.size()) + " bytes back, errno " + std::strerror(errno);
  }
  EXPECT_EQ(bad, 0) << first_bad << "\n" << boost::json::serialize(d.flows().as_object().at("relay"));
  if (bad != 0) {
    std::istringstream log(d.log());
    int shown = 0;
    for (std::string line; std::getline(log, line) && shown < 20;)
      if (line.find("failed") != std::string::npos || line.find("warn") != std::string::npos) {
        ADD_FAILURE() << line;
        ++shown;
      }
  }
  for (int fd : fds) ::close(fd);
  EXPECT_TRUE(eventually([&] {
    auto f = d.flows();
    return f.is_object() && f.as_object().at("claimed").to_number<int>() == 0;
  }, 20000, 50));
  EXPECT_EQ(d.terminate(), 0) << d.log().substr(0, 4000);
}

}  // namespace
}  // namespace flowrelay::linux_host

namespace flowrelay::linux_host {
namespace {

TEST(DemoNeedsRootNetns, WalksEpochsABCAndLeavesNothingBehind) {
  if (::geteuid() != 0) GTEST_SKIP() << "flowrelay demo needs root (network namespaces, nftables)";
  {
    std::string why;
    if (!testing::Netns::create(why)) GTEST_SKIP() << "needs private network namespaces: " << why;
  }
  auto [rc, out] = testing::sh(std::string(FLOWRELAY_BIN) + " demo --flows 2");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("RESULT: every flipped flow moved within"), std::string::npos) << out;
  EXPECT_NE(out.find("bytes lost: 0 B"), std::string::npos) << out;
}

}  // namespace
}  // namespace flowrelay::linux_host

namespace flowrelay::linux_host {
namespace {

using namespace testing;

int tcp_connect_from(const std::string& src_ip, std::uint16_t src_port, const std::string& ip, std::uint16_t port) {
  auto a = make_addr(ip, port), s = make_addr(src_ip, src_port);
  int fd = ::socket(a.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, s.sa(), s.len) != 0 || ::connect(fd, a.sa(), a.len) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// A release resets the app's flow from the reply side; the kernel then reuses the conntrack entry
// (with its claim mark) for a new connection on the same 4-tuple. The new connection must be
// decided by the running epoch all the same.
TEST(DaemonNeedsRootNetns, ReleasedFlowReconnectingFromTheSamePortIsDecidedByTheNewEpoch) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  EchoWorld echo(w);
  TempDir dir;
  const auto config = dir.file("c.json"), socket = dir.file("c.sock");
  write_config(config, config_text("surgical", {443, 80}, {}, socket, 50));
  Daemon d(w.app, config, socket, dir.file("daemon.log"));
  ASSERT_TRUE(d.wait_ready()) << d.log();
  auto in = w.app.enter();
  for (auto [src, dst] : {std::pair<std::string, std::string>{"192.0.2.1", kWorldV4}, {"2001:db8:1::1", kWorldV6}}) {
    SCOPED_TRACE(dst);
    const std::uint16_t port = dst == kWorldV4 ? 40001 : 40002;
    const std::string key = flow_key(dst == kWorldV4 ? src + ":" + std::to_string(port) : "[" + src + "]:" + std::to_string(port),
                                     dst == kWorldV4 ? dst + ":80" : "[" + dst + "]:80");
    int fd = tcp_connect_from(src, port, dst, 80);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    ASSERT_TRUE(send_all(fd, "ping"));
    ASSERT_EQ(recv_n(fd, 4), "ping");
    ASSERT_TRUE(eventually([&] {
      auto s = seen_by_src(d.flows(), "tcp");
      return s.count(key) && s[key].verdict == "claim";
    })) << describe(d);

    // The next epoch bypasses :80: the flow is released (reset), the app reconnects from the same port.
    write_config(config, config_text("surgical", {443}, {}, socket, 50));
    ASSERT_TRUE(wait_readable(fd, 5000));
    char b;
    EXPECT_LE(::recv(fd, &b, 1, 0), 0);  // reset by the release
    ::close(fd);
    fd = tcp_connect_from(src, port, dst, 80);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    ASSERT_TRUE(send_all(fd, "pong"));
    ASSERT_EQ(recv_n(fd, 4), "pong");
    EXPECT_TRUE(eventually([&] {
      auto s = seen_by_src(d.flows(), "tcp");
      return s.count(key) && s[key].verdict == "bypass";
    })) << describe(d);
    ::close(fd);
    // Back to claiming :80 for the next family, once that epoch's cycle is over.
    const auto next = d.current_epoch() + 1;
    write_config(config, config_text("surgical", {443, 80}, {}, socket, 50));
    ASSERT_TRUE(eventually([&] {
      auto e = d.epochs();
      return e.is_object() && !e.as_object().at("cycles").as_array().empty() &&
             e.as_object().at("cycles").as_array().back().as_object().at("to").to_number<std::int64_t>() == next;
    })) << d.log();
  }
}

}  // namespace
}  // namespace flowrelay::linux_host

namespace flowrelay::linux_host {
namespace {

using namespace testing;

std::string uid_config(bool with_udp, const std::string& socket) {
  const std::string dst = R"("dst": ["203.0.113.0/24", "2001:db8::/32"])";
  std::string rules = R"({"name": "root-tls", "verdict": "claim", "proto": "tcp", )" + dst +
                      R"(, "ports": [443], "uids": [0]}, {"name": "other-user", "verdict": "claim", "proto": "tcp", )" +
                      dst + R"(, "ports": [80], "uids": [12345]})";
  if (with_udp) rules += R"(, {"name": "udp", "verdict": "claim", "proto": "udp", )" + dst + R"(, "ports": [5353]})";
  return R"({"rules": [)" + rules + R"(], "reclaim": {"policy": "surgical", "debounce_ms": 50, "drain_ms": 50}, "control": {"socket": ")" +
         socket + R"("}})";
}

// uids rules: nftables matches the socket owner; the planner must see claimed flows with that uid
// too, or an unrelated change would "release" every flow a uid rule claimed.
TEST(DaemonNeedsRootNetns, UidRulesClaimByOwnerAndSurviveUnrelatedChanges) {
  if (::geteuid() != 0) GTEST_SKIP() << "the test's flows must belong to uid 0";
  FLOWRELAY_WORLD_OR_SKIP(w);
  EchoWorld echo(w);
  TempDir dir;
  const auto config = dir.file("c.json"), socket = dir.file("c.sock");
  write_config(config, uid_config(false, socket));
  Daemon d(w.app, config, socket, dir.file("daemon.log"));
  ASSERT_TRUE(d.wait_ready()) << d.log();
  Traffic t(w.app, {app_flow(kWorldV4, 443), app_flow(kWorldV6, 443), app_flow(kWorldV4, 80), app_flow(kWorldV6, 80)});
  ASSERT_TRUE(t.wait_rounds(3));
  ASSERT_TRUE(eventually([&] { return all_seen(d, t, 443, false, "claim", 1) && all_seen(d, t, 80, false, "bypass", 1); }))
      << describe(d);
  const auto listing = d.flows();  // keep the value alive across the loop
  for (const auto& f : listing.as_object().at("flows").as_array())
    EXPECT_EQ(boost::json::serialize(f.as_object().at("uid")), "0") << boost::json::serialize(f);

  write_config(config, uid_config(true, socket));
  ASSERT_TRUE(eventually([&] {  // the cycle to epoch 2 is over (a release would have waited drain_ms)
    auto e = d.epochs();
    if (!e.is_object() || e.as_object().at("cycles").as_array().empty()) return false;
    const auto& c = e.as_object().at("cycles").as_array().back().as_object();
    return c.at("to").to_number<int>() == 2 && c.at("outcome").as_string() != "running";
  })) << d.log();
  const auto cycles = d.epochs();
  EXPECT_EQ(boost::json::serialize(cycles.as_object().at("cycles").as_array().back().as_object().at("planned")),
            R"({"release":0,"reclaim":0})");
  ASSERT_TRUE(t.wait_rounds(5));
  for (const auto& f : t.flows()) EXPECT_EQ(f.reconnects, 0) << f.ip << ":" << f.port;
  EXPECT_TRUE(all_seen(d, t, 443, false, "claim", 1)) << describe(d);
  EXPECT_TRUE(all_seen(d, t, 80, false, "bypass", 1)) << describe(d);
  t.stop();
  EXPECT_EQ(d.terminate(), 0) << d.log();
}

}  // namespace
}  // namespace flowrelay::linux_host
