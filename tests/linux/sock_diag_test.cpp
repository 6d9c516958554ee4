#include "extension/linux/sock_diag.hpp"

#include "tests/linux/netns.hpp"
#include "tests/linux/sockets.hpp"

#include <gtest/gtest.h>
#include <netinet/tcp.h>
#include <sys/fsuid.h>

#include <algorithm>

namespace flowrelay::linux_host {
namespace {

using namespace testing;
using boost::asio::ip::make_address;

constexpr std::uint32_t kAppUid = 4242;

const SocketInfo* find(const std::vector<SocketInfo>& all, relay::Proto proto, const relay::Endpoint& local,
                       const relay::Endpoint& remote) {
  auto it = std::find_if(all.begin(), all.end(), [&](const SocketInfo& s) {
    return s.proto == proto && s.local == local && s.remote == remote;
  });
  return it == all.end() ? nullptr : &*it;
}

/// A TCP socket created with fsuid kAppUid, so the dump's uid is proven to be the creator's.
int tcp_socket_as_app(int family) {
  ::setfsuid(kAppUid);
  int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ::setfsuid(0);
  return fd;
}

struct Pair {
  int client = -1, server = -1;
  ~Pair() { ::close(client); ::close(server); }
};

Pair connect_pair(int listener, const std::string& ip, bool as_app) {
  Pair p;
  auto dst = make_addr(ip, local_addr(listener).port());
  p.client = as_app ? tcp_socket_as_app(dst.family()) : ::socket(dst.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_EQ(::connect(p.client, dst.sa(), dst.len), 0) << std::strerror(errno);
  p.server = accept_within(listener);
  EXPECT_GE(p.server, 0);
  return p;
}

TEST(SockDiagNeedsRootNetns, ListsConnectedTcpPairWithTupleAndUid) {
  FLOWRELAY_NETNS_OR_SKIP(ns);
  auto in = ns.enter();
  for (std::string ip : {"127.0.0.1", "::1"}) {
    SCOPED_TRACE(ip);
    int lfd = tcp_listener(ip);
    ASSERT_GE(lfd, 0);
    Pair p = connect_pair(lfd, ip, true);
    const std::uint16_t lport = local_addr(lfd).port(), cport = local_addr(p.client).port();

    SockDiag diag;
    auto all = diag.dump();
    relay::Endpoint client{make_address(ip), cport}, server{make_address(ip), lport};
    const SocketInfo* c = find(all, relay::Proto::tcp, client, server);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->state, TCP_ESTABLISHED);
    EXPECT_EQ(c->uid, kAppUid);
    EXPECT_NE(c->inode, 0u);
    EXPECT_NE(c->cookie, 0u);
    const SocketInfo* s = find(all, relay::Proto::tcp, server, client);
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->uid, 0u);
    EXPECT_NE(s->cookie, c->cookie);
    auto listening = std::count_if(all.begin(), all.end(), [&](const SocketInfo& x) {
      return x.state == TCP_LISTEN && x.local.port == lport;
    });
    EXPECT_EQ(listening, 1);
    ::close(lfd);
  }
}

TEST(SockDiagNeedsRootNetns, ListsUdpSocketsWithMark) {
  FLOWRELAY_NETNS_OR_SKIP(ns);
  auto in = ns.enter();
  for (std::string ip : {"127.0.0.1", "::1"}) {
    SCOPED_TRACE(ip);
    int server = udp_socket(ip);
    int client = udp_socket(ip);
    std::uint32_t mark = 255;
    ASSERT_EQ(::setsockopt(client, SOL_SOCKET, SO_MARK, &mark, sizeof mark), 0);
    auto dst = local_addr(server);
    ASSERT_EQ(::connect(client, dst.sa(), dst.len), 0);

    auto all = SockDiag().dump();
    relay::Endpoint c{make_address(ip), local_addr(client).port()}, s{make_address(ip), dst.port()};
    const SocketInfo* ci = find(all, relay::Proto::udp, c, s);
    ASSERT_NE(ci, nullptr);
    EXPECT_EQ(ci->state, TCP_ESTABLISHED);  // connected UDP
    EXPECT_EQ(ci->mark, 255u);
    const SocketInfo* si = find(all, relay::Proto::udp, s, relay::Endpoint{make_address(ip == "::1" ? "::" : "0.0.0.0"), 0});
    ASSERT_NE(si, nullptr);
    EXPECT_EQ(si->state, TCP_CLOSE);  // unconnected
    ::close(server);
    ::close(client);
  }
}

TEST(SockDiagNeedsRootNetns, DestroyAbortsExactlyThatSocket) {
  FLOWRELAY_NETNS_OR_SKIP(ns);
  auto in = ns.enter();
  for (std::string ip : {"127.0.0.1", "::1"}) {
    SCOPED_TRACE(ip);
    int lfd = tcp_listener(ip);
    ASSERT_GE(lfd, 0);
    Pair victim = connect_pair(lfd, ip, true);
    Pair bystander = connect_pair(lfd, ip, true);

    SockDiag diag;
    auto all = diag.dump();
    relay::Endpoint server{make_address(ip), local_addr(lfd).port()};
    const SocketInfo* v = find(all, relay::Proto::tcp, {make_address(ip), local_addr(victim.client).port()}, server);
    ASSERT_NE(v, nullptr);

    // A stale listing (same tuple, other cookie) must not kill the socket now holding the tuple.
    SocketInfo stale = *v;
    stale.cookie ^= 0x5a5a;
    EXPECT_EQ(diag.destroy(stale).result, DestroyResult::gone);

    auto out = diag.destroy(*v);
    ASSERT_EQ(out.result, DestroyResult::destroyed) << to_string(out.result) << " errno " << out.error;

    // The app's next read reports the abort.
    char b;
    ASSERT_TRUE(wait_readable(victim.client));
    EXPECT_EQ(::recv(victim.client, &b, 1, 0), -1);
    EXPECT_EQ(errno, ECONNABORTED);
    EXPECT_EQ(find(diag.dump(), relay::Proto::tcp, v->local, v->remote), nullptr);

    // Destroying again: gone, not an error.
    EXPECT_EQ(diag.destroy(*v).result, DestroyResult::gone);

    // Everyone else is untouched: the bystander flow still carries bytes both ways, the listener accepts.
    ASSERT_TRUE(send_all(bystander.client, "ping"));
    EXPECT_EQ(recv_n(bystander.server, 4), "ping");
    ASSERT_TRUE(send_all(bystander.server, "pong"));
    EXPECT_EQ(recv_n(bystander.client, 4), "pong");
    Pair later = connect_pair(lfd, ip, false);
    EXPECT_GE(later.server, 0);
    ::close(lfd);
  }
}

TEST(SockDiag, UnavailableIsNamedForTheControllerFallback) {
  EXPECT_STREQ(to_string(DestroyResult::unavailable), "surgical reclaim unavailable");
}

}  // namespace
}  // namespace flowrelay::linux_host
