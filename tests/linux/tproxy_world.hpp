#pragma once
// Test-only topology for TPROXY integration tests, all in private namespaces:
//
//   app netns                                   world netns
//   va 192.0.2.1/24, 2001:db8:1::1/64  <-veth->  vw 192.0.2.2/24, 2001:db8:1::2/64
//   default via 192.0.2.2 / 2001:db8:1::2        lo: 203.0.113.10/32, 2001:db8::10/128
//   (flowrelay's table, routes, "relay")         TCP :80 :443 and UDP :5353 :5354 on [::] (dual stack)

#include "tests/linux/netns.hpp"
#include "tests/linux/sockets.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>

#include <utility>

namespace flowrelay::linux_host::testing {

inline constexpr const char* kWorldV4 = "203.0.113.10";
inline constexpr const char* kWorldV6 = "2001:db8::10";

struct World {
  Netns app;
  Netns world;
  int tcp80 = -1, tcp443 = -1, udp5353 = -1, udp5354 = -1;  // world-side servers

  World(Netns a, Netns w) : app(std::move(a)), world(std::move(w)) {}
  World(World&& o) noexcept
      : app(std::move(o.app)), world(std::move(o.world)), tcp80(std::exchange(o.tcp80, -1)),
        tcp443(std::exchange(o.tcp443, -1)), udp5353(std::exchange(o.udp5353, -1)), udp5354(std::exchange(o.udp5354, -1)) {}
  ~World() {
    for (int fd : {tcp80, tcp443, udp5353, udp5354})
      if (fd >= 0) ::close(fd);
  }

  /// nullopt (with `why`) when namespaces cannot be made; failures of `ip` are test failures.
  static std::optional<World> create(std::string& why) {
    auto a = Netns::create(why);
    if (!a) return std::nullopt;
    auto w = Netns::create(why);
    if (!w) return std::nullopt;
    World world(std::move(*a), std::move(*w));
    // No duplicate address detection: tentative addresses would delay the first IPv6 packets.
    for (const Netns* ns : {&world.world, &world.app}) {
      auto in = ns->enter();
      // /proc/sys/net shows the namespace of the thread that opens it.
      for (const char* knob : {"/proc/sys/net/ipv6/conf/default/accept_dad", "/proc/sys/net/ipv6/conf/all/accept_dad"}) {
        FILE* f = std::fopen(knob, "w");
        EXPECT_NE(f, nullptr) << knob;
        if (f != nullptr) { std::fputs("0", f); std::fclose(f); }
      }
    }
    {
      auto in = world.app.enter();
      // Distinct ifindexes: a veth whose peer has its own ifindex (2 == 2 in two fresh namespaces)
      // gets its carrier through the rate-limited linkwatch path, ~1 s late.
      expect_sh("ip link add va index 10 type veth peer name vw index 20 netns " + world.world.path());
      expect_sh("ip addr add 192.0.2.1/24 dev va && ip -6 addr add 2001:db8:1::1/64 dev va nodad && "
                "ip link set va up && ip route add default via 192.0.2.2 && "
                "ip -6 route add default via 2001:db8:1::2");
    }
    {
      auto in = world.world.enter();
      expect_sh("ip addr add 192.0.2.2/24 dev vw && ip -6 addr add 2001:db8:1::2/64 dev vw nodad && "
                "ip link set vw up && ip addr add 203.0.113.10/32 dev lo && "
                "ip -6 addr add 2001:db8::10/128 dev lo nodad && "
                // Wildcard-bound UDP servers answer from the world address, as a real server would.
                "ip route replace 192.0.2.0/24 dev vw proto kernel scope link src 203.0.113.10 && "
                "ip -6 route replace 2001:db8:1::/64 dev vw proto kernel metric 256 src 2001:db8::10");
      world.tcp80 = tcp_listener("::", 80);
      world.tcp443 = tcp_listener("::", 443);
      world.udp5353 = udp_socket("::", 5353);
      world.udp5354 = udp_socket("::", 5354);
    }
    return world;
  }

  static void expect_sh(const std::string& cmd) {
    auto [rc, out] = sh(cmd);
    EXPECT_EQ(rc, 0) << cmd << "\n" << out;
  }
};

/// Which side got the traffic: the relay (claimed), the world (bypassed), or nobody in time.
enum class Landed { relay, world, nowhere };

inline const char* to_string(Landed l) {
  return l == Landed::relay ? "relay" : l == Landed::world ? "world" : "nowhere";
}

/// Waits until one of the two fds is readable.
inline Landed landed(int relay_fd, int world_fd, int ms = 5000) {
  pollfd p[2] = {{relay_fd, POLLIN, 0}, {world_fd, POLLIN, 0}};
  if (::poll(p, 2, ms) <= 0) return Landed::nowhere;
  return (p[0].revents & POLLIN) ? Landed::relay : Landed::world;
}

}  // namespace flowrelay::linux_host::testing

#define FLOWRELAY_WORLD_OR_SKIP(var)                                                     \
  std::string var##_why;                                                                 \
  auto var##_opt = ::flowrelay::linux_host::testing::World::create(var##_why);           \
  if (!var##_opt) GTEST_SKIP() << "needs private network namespaces: " << var##_why;     \
  ASSERT_FALSE(::testing::Test::HasFailure()) << "topology set-up failed";               \
  auto& var = *var##_opt
