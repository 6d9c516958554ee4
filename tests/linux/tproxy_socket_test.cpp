#include "extension/linux/tproxy_socket.hpp"

#include "extension/linux/conntrack.hpp"
#include "extension/linux/nft_table.hpp"
#include "extension/linux/policy_routes.hpp"
#include "extension/linux/socket_address.hpp"
#include "tests/linux/co_binder.hpp"
#include "tests/linux/tproxy_world.hpp"

#include <gtest/gtest.h>

#include <array>

namespace flowrelay::linux_host {
namespace {

using namespace testing;
using boost::asio::ip::make_address;

constexpr std::uint16_t kPort = 7893;

relay::Endpoint ep(const std::string& ip, std::uint16_t port) { return {make_address(ip), port}; }
bool v4(const std::string& ip) { return ip.find(':') == std::string::npos; }
std::string loopback(const std::string& ip) { return v4(ip) ? "127.0.0.1" : "::1"; }
std::string app_ip(const std::string& ip) { return v4(ip) ? "192.0.2.1" : "2001:db8:1::1"; }

/// Claims TCP 443 and UDP 5353 to the world; everything else bypasses.
struct Claiming {
  NftTable nft;
  PolicyRoutes routes{{.fwmark = 1, .table = 100}};
  NftTableSpec spec;
  Claiming() {
    spec.tproxy_port = kPort;
    spec.epoch = 1;
    for (auto [proto, port] : {std::pair{ProtoMatch::tcp, 443}, std::pair{ProtoMatch::udp, 5353}}) {
      NftRule r;
      r.proto = proto;
      r.dst = {Cidr::parse("203.0.113.0/24"), Cidr::parse("2001:db8::/32")};
      r.ports = {{static_cast<std::uint16_t>(port), static_cast<std::uint16_t>(port)}};
      spec.rules.push_back(r);
    }
    nft.apply(spec);
    routes.install();
  }
};

TEST(TproxySocketNeedsRootNetns, TcpListenerSeesTheOriginalDestinationAndCarriesBytes) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  auto in = w.app.enter();
  Claiming claiming;
  for (std::string ip : {kWorldV4, kWorldV6}) {
    SCOPED_TRACE(ip);
    UniqueFd listener = open_tproxy_tcp_listener(ep(loopback(ip), kPort));
    int app = tcp_connect(ip, 443);
    ASSERT_GE(app, 0) << std::strerror(errno);
    UniqueFd conn(accept_within(listener.get()));
    ASSERT_TRUE(conn);
    EXPECT_EQ(original_destination(conn.get()), ep(ip, 443));
    EXPECT_EQ(peer_endpoint(conn.get()), ep(app_ip(ip), local_addr(app).port()));
    ASSERT_TRUE(send_all(app, "hello relay"));
    EXPECT_EQ(recv_n(conn.get(), 11), "hello relay");
    ASSERT_TRUE(send_all(conn.get(), "hello app"));
    EXPECT_EQ(recv_n(app, 9), "hello app");
    EXPECT_EQ(peer_endpoint(app), ep(ip, 443));  // the app believes it talks to the world
    ::close(app);
  }
}

TEST(TproxySocketNeedsRootNetns, UdpDatagramsCarryOriginalDestinationAndRepliesComeFromIt) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  auto in = w.app.enter();
  Claiming claiming;
  for (std::string ip : {kWorldV4, kWorldV6}) {
    SCOPED_TRACE(ip);
    UniqueFd relay_udp = open_tproxy_udp_socket(ep(loopback(ip), kPort));
    int app = udp_socket(v4(ip) ? "0.0.0.0" : "::");
    auto dst = make_addr(ip, 5353);
    ASSERT_EQ(::connect(app, dst.sa(), dst.len), 0);  // connected: accepts replies only from 5353
    ASSERT_TRUE(send_all(app, "query"));

    ASSERT_TRUE(wait_readable(relay_udp.get()));
    std::array<std::byte, 3> small{};  // shorter than the datagram: truncation is reported
    boost::system::error_code ec;
    auto d = recv_with_original_dst(relay_udp.get(), small, ec);
    ASSERT_TRUE(d.has_value()) << ec.message();
    EXPECT_EQ(d->length, 3u);
    EXPECT_TRUE(d->truncated);
    EXPECT_EQ(d->original_dst, ep(ip, 5353));
    EXPECT_EQ(d->source, ep(app_ip(ip), local_addr(app).port()));

    UniqueFd reply = open_udp_reply_socket(d->original_dst, d->source, ec);
    ASSERT_TRUE(reply) << ec.message();
    ASSERT_TRUE(send_all(reply.get(), "answer"));
    EXPECT_EQ(recv_n(app, 6), "answer");

    // A second reply socket for another app flow to the same destination shares the address.
    UniqueFd reply2 = open_udp_reply_socket(d->original_dst, ep(app_ip(ip), 9), ec);
    EXPECT_TRUE(reply2) << ec.message();
    ::close(app);
  }
}

TEST(TproxySocketNeedsRootNetns, ReplySocketAddressInUseIsReportedNotThrown) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  auto in = w.app.enter();
  // Someone holds 203.0.113.10:5353 without SO_REUSEADDR.
  int holder = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ASSERT_EQ(::setsockopt(holder, SOL_IP, IP_TRANSPARENT, &one, sizeof one), 0);
  auto a = make_addr(kWorldV4, 5353);
  ASSERT_EQ(::bind(holder, a.sa(), a.len), 0) << std::strerror(errno);
  boost::system::error_code ec;
  UniqueFd reply = open_udp_reply_socket(ep(kWorldV4, 5353), ep("192.0.2.1", 40000), ec);
  EXPECT_FALSE(reply);
  EXPECT_EQ(ec, boost::system::errc::address_in_use) << ec.message();
  ::close(holder);
}

// DESIGN.md "Security model": no UDP socket another user can co-bind. With SO_REUSEADDR on both
// sides Linux lets any user bind the same UDP address, and the newest socket wins the lookup. The
// listener therefore shares with nobody; reply sockets share their original destination only
// through SO_REUSEPORT, whose group the kernel lets only the same user join. IP_FREEBIND lets an
// unprivileged user bind a non-local destination address, so that alone would not protect them.
TEST(TproxySocketNeedsRootNetns, AnotherUserCannotBindTheUdpListenerOrAReplySocketsAddress) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  auto in = w.app.enter();
  for (std::string ip : {kWorldV4, kWorldV6}) {
    SCOPED_TRACE(ip);
    UniqueFd listener = open_tproxy_udp_socket(ep(loopback(ip), kPort));
    const relay::Endpoint dst = ep(ip, 5353), app = ep(app_ip(ip), 40000);
    boost::system::error_code ec;
    UniqueFd reply = open_udp_reply_socket(dst, app, ec);
    ASSERT_TRUE(reply) << ec.message();
    UniqueFd reply2 = open_udp_reply_socket(dst, ep(app_ip(ip), 40001), ec);  // we still share it
    ASSERT_TRUE(reply2) << ec.message();
    for (Reuse reuse : {Reuse::address, Reuse::port, Reuse::both}) {
      SCOPED_TRACE(to_string(reuse));
      CoBinder on_listener({.ip = loopback(ip), .port = kPort, .reuse = reuse});
      EXPECT_EQ(on_listener.bind_errno(), EADDRINUSE) << std::strerror(on_listener.bind_errno());
      CoBinder on_reply({.ip = ip, .port = 5353, .reuse = reuse, .freebind = true, .peer = std::pair{app_ip(ip), 40000}});
      EXPECT_EQ(on_reply.bind_errno(), EADDRINUSE) << std::strerror(on_reply.bind_errno());
    }
  }
}

// TCP listeners keep SO_REUSEADDR (a restart must not wait out TIME_WAIT): Linux never lets a
// second socket bind a port that is listening, whatever either side sets.
TEST(TproxySocketNeedsRootNetns, AnotherUserCannotBindTheTcpListener) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  auto in = w.app.enter();
  for (std::string ip : {kWorldV4, kWorldV6}) {
    SCOPED_TRACE(ip);
    UniqueFd listener = open_tproxy_tcp_listener(ep(loopback(ip), kPort));
    for (Reuse reuse : {Reuse::address, Reuse::port, Reuse::both}) {
      SCOPED_TRACE(to_string(reuse));
      CoBinder co({.ip = loopback(ip), .port = kPort, .reuse = reuse, .tcp = true});
      EXPECT_EQ(co.bind_errno(), EADDRINUSE) << std::strerror(co.bind_errno());
    }
  }
}

/// DESIGN.md's UDP reclaim, on this kernel: a bypassed flow re-marked "claim" in conntrack sends
/// its next datagram to the relay (the app never notices: replies come from the destination), and
/// re-marked "bypass" goes back to the world.
TEST(TproxySocketNeedsRootNetns, UdpFlowMovesInAndOutOfTheRelayByConntrackRemark) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  auto in = w.app.enter();
  Claiming claiming;  // :5354 bypasses under epoch 1
  Conntrack ct;
  for (std::string ip : {kWorldV4, kWorldV6}) {
    SCOPED_TRACE(ip);
    UniqueFd relay_udp = open_tproxy_udp_socket(ep(loopback(ip), kPort));
    int app = udp_socket(v4(ip) ? "0.0.0.0" : "::");
    auto dst = make_addr(ip, 5354);
    ASSERT_EQ(::connect(app, dst.sa(), dst.len), 0);
    const relay::Endpoint app_ep = ep(app_ip(ip), local_addr(app).port()), dst_ep = ep(ip, 5354);
    char buf[64];

    ASSERT_TRUE(send_all(app, "one"));
    ASSERT_EQ(landed(relay_udp.get(), w.udp5354), Landed::world);
    sockaddr_storage from{};
    socklen_t fl = sizeof from;
    ASSERT_EQ(::recvfrom(w.udp5354, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &fl), 3);
    // The world answers: that reply is the conntrack entry's reply direction.
    ASSERT_EQ(::sendto(w.udp5354, "r1", 2, 0, reinterpret_cast<sockaddr*>(&from), fl), 2);
    EXPECT_EQ(recv_n(app, 2), "r1");
    auto e = ct.find(relay::Proto::udp, app_ep, dst_ep);
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(CtMark::verdict(e->mark), Verdict::bypass);

    // Reclaim: re-mark as claimed under epoch 2.
    ASSERT_TRUE(ct.set_mark(relay::Proto::udp, app_ep, dst_ep, CtMark::encode(Verdict::claim, 2)));
    ASSERT_TRUE(send_all(app, "two"));
    ASSERT_EQ(to_string(landed(relay_udp.get(), w.udp5354)), std::string("relay"));
    boost::system::error_code ec;
    auto d = recv_with_original_dst(relay_udp.get(), std::as_writable_bytes(std::span(buf)), ec);
    ASSERT_TRUE(d.has_value()) << ec.message();
    EXPECT_EQ(std::string(buf, d->length), "two");
    EXPECT_EQ(d->original_dst, dst_ep);
    EXPECT_EQ(d->source, app_ep);
    UniqueFd reply = open_udp_reply_socket(dst_ep, app_ep, ec);
    ASSERT_TRUE(reply) << ec.message();
    ASSERT_TRUE(send_all(reply.get(), "r2"));
    EXPECT_EQ(recv_n(app, 2), "r2");  // the connected app socket accepts it: it comes from dst
    // While the reply socket exists, TPROXY's lookup prefers it for this flow's datagrams.
    ASSERT_TRUE(send_all(app, "two-b"));
    EXPECT_EQ(to_string(landed(reply.get(), relay_udp.get())), std::string("relay"));
    d = recv_with_original_dst(reply.get(), std::as_writable_bytes(std::span(buf)), ec);
    ASSERT_TRUE(d.has_value()) << ec.message();
    EXPECT_EQ(std::string(buf, d->length), "two-b");
    EXPECT_EQ(d->original_dst, dst_ep);
    reply.reset();

    // Release: re-mark as bypassed; the next datagram goes to the world again.
    ASSERT_TRUE(ct.set_mark(relay::Proto::udp, app_ep, dst_ep, CtMark::encode(Verdict::bypass, 3)));
    ASSERT_TRUE(send_all(app, "three"));
    ASSERT_EQ(to_string(landed(relay_udp.get(), w.udp5354)), std::string("world"));
    ASSERT_EQ(::recv(w.udp5354, buf, sizeof buf, 0), 5);
    ::close(app);
  }
}

TEST(TproxySocket, EndpointsRoundTripThroughSockaddr) {
  for (auto e : {ep("203.0.113.10", 443), ep("2001:db8::10", 5353)}) {
    sockaddr_storage ss;
    to_sockaddr(e, ss);
    EXPECT_EQ(to_endpoint(reinterpret_cast<sockaddr*>(&ss)), e);
  }
}

}  // namespace
}  // namespace flowrelay::linux_host
