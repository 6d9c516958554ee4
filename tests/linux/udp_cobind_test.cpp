// DESIGN.md "Security model": no UDP socket another user can co-bind. An unprivileged process
// (nobody, in the relay's namespace) tries to share the addresses the real binary receives on:
// `flowrelay run`'s TPROXY UDP listener and a claimed flow's reply address, and `flowrelay forward
// --udp`'s listener, with SO_REUSEADDR, SO_REUSEPORT and both. Whether or not the kernel lets it
// bind, it must receive none of the datagrams, and every one must still be relayed and answered.
#include "tests/linux/child_process.hpp"
#include "tests/linux/co_binder.hpp"
#include "tests/linux/daemon_harness.hpp"

#include <gtest/gtest.h>

namespace flowrelay::linux_host {
namespace {

using namespace testing;

constexpr Reuse kReuses[] = {Reuse::address, Reuse::port, Reuse::both};
constexpr int kDatagrams = 5;

bool v4(const std::string& ip) { return ip.find(':') == std::string::npos; }
std::string loopback(const std::string& ip) { return v4(ip) ? "127.0.0.1" : "::1"; }
std::string app_ip(const std::string& ip) { return v4(ip) ? "192.0.2.1" : "2001:db8:1::1"; }
std::string bracketed(const std::string& ip, std::uint16_t port) {
  return (v4(ip) ? ip : "[" + ip + "]") + ":" + std::to_string(port);
}

/// A UDP socket connected to ip:port (in the calling thread's namespace).
int connected_udp(const std::string& ip, std::uint16_t port) {
  auto a = make_addr(ip, port);
  int fd = ::socket(a.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd >= 0 && ::connect(fd, a.sa(), a.len) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

/// Sends `n` datagrams one at a time on a connected socket; how many came back echoed within 2 s.
int echoed(int fd, int n, const std::string& tag) {
  int ok = 0;
  for (int i = 0; i < n; ++i) {
    const std::string msg = tag + " #" + std::to_string(i);
    if (!send_all(fd, msg)) continue;
    char buf[256];
    while (wait_readable(fd, 2000)) {
      const ssize_t k = ::recv(fd, buf, sizeof buf, 0);
      if (k < 0) break;
      if (std::string(buf, std::size_t(k)) == msg) {
        ++ok;
        break;
      }
    }
  }
  return ok;
}

struct Claiming {
  World& w;
  EchoWorld echo{w};
  TempDir dir;
  std::string config = dir.file("c.json"), socket = dir.file("c.sock");
  std::unique_ptr<Daemon> daemon;
  explicit Claiming(World& world) : w(world) {
    write_config(config, config_text("surgical", {}, {5353}, socket));
    daemon = std::make_unique<Daemon>(w.app, config, socket, dir.file("daemon.log"));
  }
  /// The daemon lists the flow from `fd` (app side) to ip:5353 as claimed.
  bool claimed(int fd, const std::string& ip) const {
    const auto seen = seen_by_src(daemon->flows(), "udp");
    auto it = seen.find(flow_key(endpoint_string(fd), bracketed(ip, 5353)));
    return it != seen.end() && it->second.verdict == "claim";
  }
};

// A new flow's datagrams reach the relay through the TPROXY lookup of the listener's address: a
// co-bound socket there would win that lookup and black-hole every new flow.
TEST(UdpCoBindNeedsRootNetns, AnotherUserOnTheTproxyListenerGetsNoClaimedDatagram) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  Claiming c(w);
  ASSERT_TRUE(c.daemon->wait_ready()) << c.daemon->log();
  auto in = w.app.enter();
  for (std::string ip : {kWorldV4, kWorldV6}) {
    for (Reuse reuse : kReuses) {
      SCOPED_TRACE(ip + " " + to_string(reuse));
      CoBinder co({.ip = loopback(ip), .port = 7893, .reuse = reuse});
      ASSERT_GE(co.bind_errno(), 0) << "the co-binder did not report";
      const int app = connected_udp(ip, 5353);  // a new flow: it goes through the listener
      ASSERT_GE(app, 0);
      EXPECT_EQ(echoed(app, kDatagrams, "new flow"), kDatagrams)
          << "co-binder " << (co.bound() ? "bound" : std::strerror(co.bind_errno())) << "\n" << c.daemon->log();
      EXPECT_TRUE(c.claimed(app, ip)) << boost::json::serialize(c.daemon->flows());
      EXPECT_EQ(co.received(), 0) << (co.bound() ? "bound" : std::strerror(co.bind_errno()));
      ::close(app);
    }
  }
  EXPECT_EQ(c.daemon->terminate(), 0) << c.daemon->log();
}

// A claimed flow's later datagrams reach the relay through the TPROXY lookup of its original
// destination, where the relay's reply socket (connected to the app) is bound. Another user can
// bind that non-local address without privileges (IP_FREEBIND); were it let into the address, its
// socket connected to the app would take the flow's datagrams.
TEST(UdpCoBindNeedsRootNetns, AnotherUserOnAClaimedFlowsReplyAddressGetsNoDatagram) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  Claiming c(w);
  ASSERT_TRUE(c.daemon->wait_ready()) << c.daemon->log();
  auto in = w.app.enter();
  for (std::string ip : {kWorldV4, kWorldV6}) {
    const int app = connected_udp(ip, 5353);
    ASSERT_GE(app, 0);
    ASSERT_EQ(echoed(app, 1, "first"), 1) << c.daemon->log();  // the association and its reply socket exist
    ASSERT_TRUE(c.claimed(app, ip)) << boost::json::serialize(c.daemon->flows());
    const std::uint16_t app_port = local_addr(app).port();
    for (Reuse reuse : kReuses) {
      SCOPED_TRACE(ip + " " + to_string(reuse));
      CoBinder co({.ip = ip, .port = 5353, .reuse = reuse, .freebind = true, .peer = std::pair{app_ip(ip), app_port}});
      ASSERT_GE(co.bind_errno(), 0) << "the co-binder did not report";
      EXPECT_EQ(echoed(app, kDatagrams, "same flow"), kDatagrams)
          << "co-binder " << (co.bound() ? "bound" : std::strerror(co.bind_errno())) << "\n" << c.daemon->log();
      EXPECT_EQ(co.received(), 0) << (co.bound() ? "bound" : std::strerror(co.bind_errno()));
    }
    EXPECT_TRUE(c.claimed(app, ip)) << boost::json::serialize(c.daemon->flows());
    ::close(app);
  }
  EXPECT_EQ(c.daemon->terminate(), 0) << c.daemon->log();
}

// Before a flow exists, another user binds its destination (IP_FREEBIND) and connects to the app's
// address: TPROXY's lookup of established sockets finds that socket, refuses it as not transparent,
// and without a drop the claimed datagram would go on to local delivery, into that socket.
TEST(UdpCoBindNeedsRootNetns, AnotherUserWaitingOnAClaimedDestinationGetsNoDatagram) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  Claiming c(w);
  ASSERT_TRUE(c.daemon->wait_ready()) << c.daemon->log();
  auto in = w.app.enter();
  for (std::string ip : {kWorldV4, kWorldV6}) {
    SCOPED_TRACE(ip);
    const int app = connected_udp(ip, 5353);  // its port is chosen; nothing is sent yet
    ASSERT_GE(app, 0);
    const std::uint16_t app_port = local_addr(app).port();
    CoBinder co({.ip = ip, .port = 5353, .reuse = Reuse::address, .freebind = true,
                 .peer = std::pair{app_ip(ip), app_port}});
    ASSERT_GE(co.bind_errno(), 0) << "the co-binder did not report";
    ASSERT_TRUE(co.bound()) << std::strerror(co.bind_errno());  // nothing of ours holds the address yet
    echoed(app, 2, "intercepted?");  // no echo comes back: each waits its 2 s for one
    EXPECT_EQ(co.received(), 0);
    ::close(app);
  }
  EXPECT_EQ(c.daemon->terminate(), 0) << c.daemon->log();
}

// `flowrelay forward --udp` shares its port between its own shards (SO_REUSEPORT, one user); a
// socket of another user must not join in and receive what the relay should forward.
TEST(ForwardUdpCoBindNeedsRootNetns, AnotherUserOnTheForwardListenerGetsNoDatagram) {
  FLOWRELAY_NETNS_OR_SKIP(ns);
  TempDir dir;
  auto in = ns.enter();
  const int server = udp_socket("127.0.0.1", 9053);  // the fixed upstream: echoes by hand below
  ASSERT_GE(server, 0);
  ChildProcess forward({FLOWRELAY_BIN, "forward", "--udp", "--listen", "127.0.0.1:9000", "--to", "127.0.0.1:9053",
                        "--threads", "2", "--drain-ms", "200"},
                       dir.file("forward.log"), {.netns_fd = ns.fd()});
  /// Sends one datagram through the forwarder, echoes it at the server; true when it came back.
  auto round_trip = [&](int app, const std::string& msg, int ms) {
    if (!send_all(app, msg) || !wait_readable(server, ms)) return false;
    char buf[256];
    SockAddr from;
    from.len = sizeof from.ss;
    const ssize_t k = ::recvfrom(server, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from.ss), &from.len);
    if (k <= 0 || std::string(buf, std::size_t(k)) != msg) return false;
    ::sendto(server, buf, std::size_t(k), 0, from.sa(), from.len);
    return wait_readable(app, ms) && ::recv(app, buf, sizeof buf, 0) == k;
  };
  {
    const int probe = connected_udp("127.0.0.1", 9000);
    ASSERT_TRUE(eventually([&] { return round_trip(probe, "up?", 50); }, 10000)) << forward.output();
    ::close(probe);
    char drain[256];
    while (::recv(server, drain, sizeof drain, MSG_DONTWAIT) >= 0) {}  // late probes answered by nobody
  }
  for (Reuse reuse : kReuses) {
    SCOPED_TRACE(to_string(reuse));
    CoBinder co({.ip = "127.0.0.1", .port = 9000, .reuse = reuse});
    ASSERT_GE(co.bind_errno(), 0) << "the co-binder did not report";
    const int app = connected_udp("127.0.0.1", 9000);
    int ok = 0;
    for (int i = 0; i < kDatagrams; ++i) ok += round_trip(app, "forward #" + std::to_string(i), 2000) ? 1 : 0;
    EXPECT_EQ(ok, kDatagrams) << "co-binder " << (co.bound() ? "bound" : std::strerror(co.bind_errno()));
    EXPECT_EQ(co.received(), 0) << (co.bound() ? "bound" : std::strerror(co.bind_errno()));
    ::close(app);
  }
  EXPECT_EQ(forward.terminate(), 0) << forward.output();
  ::close(server);
}

}  // namespace
}  // namespace flowrelay::linux_host
