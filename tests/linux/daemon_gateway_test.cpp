// No open relay (DESIGN.md, "Security model"): `flowrelay run` claims the flows that start on its
// own host, and forwarded traffic only from what `linux.gateway` names. A third namespace, "lan",
// routes through the daemon's namespace to the world:
//
//   lan netns                 app netns (flowrelay, ip_forward=1)          world netns
//   vl 10.9.0.2/24  <-veth->  veth-lan 10.9.0.1/24   va 192.0.2.1  <-veth->  vw, server 203.0.113.10:443
//   default via 10.9.0.1                                                       10.9.0.0/24 via 192.0.2.1
//
// Judged at the far server: a relayed connection comes from the relay's own socket (192.0.2.1),
// a forwarded one from the lan client itself (10.9.0.2).
#include "tests/linux/daemon_harness.hpp"

#include <gtest/gtest.h>

namespace flowrelay::linux_host {
namespace {

using namespace testing;

constexpr const char* kLanClient = "10.9.0.2";
constexpr const char* kRelaySource = "192.0.2.1";

/// The lan namespace, wired to `w.app` as in the picture; nullopt (with `why`) without namespaces.
std::optional<Netns> make_lan(const World& w, std::string& why) {
  auto lan = Netns::create(why);
  if (!lan) return std::nullopt;
  {
    auto in = w.app.enter();
    World::expect_sh("ip link add veth-lan index 30 type veth peer name vl index 40 netns " + lan->path());
    World::expect_sh("ip addr add 10.9.0.1/24 dev veth-lan && ip link set veth-lan up && "
                     "echo 1 > /proc/sys/net/ipv4/ip_forward");
  }
  {
    auto in = lan->enter();
    World::expect_sh("ip addr add 10.9.0.2/24 dev vl && ip link set vl up && ip route add default via 10.9.0.1");
  }
  {
    auto in = w.world.enter();
    World::expect_sh("ip route add 10.9.0.0/24 via 192.0.2.1");
  }
  return lan;
}

std::string config_text(const std::string& socket, const std::string& linux_section = "") {
  return R"({"default": "bypass", "rules": [
      {"name": "web", "verdict": "claim", "proto": "tcp", "dst": ["203.0.113.0/24"], "ports": [443]}],
    "reclaim": {"policy": "surgical", "debounce_ms": 20, "drain_ms": 100},
    "linux": {)" + linux_section + R"(},
    "control": {"socket": ")" + socket + R"("}})";
}

/// Connects from `from` to world:443, checks a round trip, and returns the peer address the world's
/// server saw ("" if the connection did not work).
std::string peer_seen_by_world(const World& w, const Netns& from) {
  int fd = -1;
  {
    auto in = from.enter();
    fd = tcp_connect_within(kWorldV4, 443, 3000);
  }
  if (fd < 0) return "";
  std::string peer;
  int s = accept_within(w.tcp443, 3000);
  if (s >= 0) {
    SockAddr a;
    a.len = sizeof a.ss;
    ::getpeername(s, reinterpret_cast<sockaddr*>(&a.ss), &a.len);
    char buf[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(a.ss).sin6_addr, buf, sizeof buf);
    peer = buf;
    if (peer.rfind("::ffff:", 0) == 0) peer = peer.substr(7);  // the server listens on [::], dual stack
    if (!send_all(fd, "ping") || recv_n(s, 4) != "ping" || !send_all(s, "pong") || recv_n(fd, 4) != "pong")
      peer = "";
    ::close(s);
  }
  ::close(fd);
  return peer;
}

int claimed(const Daemon& d) {
  auto f = d.flows();
  return f.is_object() ? f.as_object().at("relay").as_object().at("adopted").to_number<int>() : -1;
}

#define FLOWRELAY_LAN_OR_SKIP(var, world)                                          \
  std::string var##_why;                                                           \
  auto var##_opt = make_lan(world, var##_why);                                     \
  if (!var##_opt) GTEST_SKIP() << "needs private network namespaces: " << var##_why; \
  ASSERT_FALSE(::testing::Test::HasFailure()) << "lan set-up failed";              \
  auto& var = *var##_opt

TEST(DaemonGatewayNeedsRootNetns, FlowsForwardedForAnotherHostAreNotClaimedByDefault) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  FLOWRELAY_LAN_OR_SKIP(lan, w);
  TempDir dir;
  const auto config = dir.file("c.json"), socket = dir.file("c.sock");
  write_config(config, config_text(socket));
  Daemon d(w.app, config, socket, dir.file("d.log"));
  ASSERT_TRUE(d.wait_ready()) << d.log();

  // The lan client matches the claim rule, but its flow only passes through: forwarded as is.
  EXPECT_EQ(peer_seen_by_world(w, lan), kLanClient) << d.log();
  EXPECT_EQ(claimed(d), 0) << d.log();
  // The host's own flow to the same place is claimed: the server sees the relay's socket.
  EXPECT_EQ(peer_seen_by_world(w, w.app), kRelaySource) << d.log();
  EXPECT_TRUE(eventually([&] { return claimed(d) == 1; })) << d.log();
  EXPECT_EQ(d.terminate(), 0) << d.log();
}

TEST(DaemonGatewayNeedsRootNetns, GatewayModeClaimsOnlyWhatItNamesAndFollowsAReload) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  FLOWRELAY_LAN_OR_SKIP(lan, w);
  TempDir dir;
  const auto config = dir.file("c.json"), socket = dir.file("c.sock");
  // Epoch 1 names another network: the lan is still not claimed.
  write_config(config, config_text(socket, R"("gateway": {"sources": ["10.99.0.0/24"]})"));
  Daemon d(w.app, config, socket, dir.file("d.log"));
  ASSERT_TRUE(d.wait_ready()) << d.log();
  EXPECT_EQ(peer_seen_by_world(w, lan), kLanClient) << d.log();
  EXPECT_EQ(claimed(d), 0) << d.log();

  // Epoch 2 names the lan-facing interface: the lan's flow is claimed, the server sees the relay.
  write_config(config, config_text(socket, R"("gateway": {"interfaces": ["veth-lan"]})"));
  ASSERT_TRUE(eventually([&] { return d.current_epoch() == 2; })) << d.log();
  EXPECT_EQ(peer_seen_by_world(w, lan), kRelaySource) << d.log();
  EXPECT_TRUE(eventually([&] { return claimed(d) == 1; })) << d.log();

  // Epoch 3: interface and source must both match; the lan's own network does.
  write_config(config, config_text(socket, R"("gateway": {"interfaces": ["veth-lan"], "sources": ["10.9.0.0/24"]})"));
  ASSERT_TRUE(eventually([&] { return d.current_epoch() == 3; })) << d.log();
  EXPECT_EQ(peer_seen_by_world(w, lan), kRelaySource) << d.log();
  EXPECT_TRUE(eventually([&] { return claimed(d) == 2; })) << d.log();

  // Epoch 4: gateway off again.
  write_config(config, config_text(socket));
  ASSERT_TRUE(eventually([&] { return d.current_epoch() == 4; })) << d.log();
  EXPECT_EQ(peer_seen_by_world(w, lan), kLanClient) << d.log();
  EXPECT_EQ(claimed(d), 2) << d.log();
  EXPECT_EQ(d.terminate(), 0) << d.log();
}

}  // namespace
}  // namespace flowrelay::linux_host
