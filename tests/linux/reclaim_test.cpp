// The kernel half of a surgical reclaim, end to end on real sockets: the building blocks together
// (nft table per epoch, policy routes, sock_diag, conntrack, TPROXY sockets) do what DESIGN.md's
// reclaim needs, before any daemon exists.
#include "extension/linux/conntrack.hpp"
#include "extension/linux/nft_table.hpp"
#include "extension/linux/policy_routes.hpp"
#include "extension/linux/sock_diag.hpp"
#include "extension/linux/socket_address.hpp"
#include "extension/linux/tproxy_socket.hpp"
#include "tests/linux/tproxy_world.hpp"

#include <gtest/gtest.h>

namespace flowrelay::linux_host {
namespace {

using namespace testing;
using boost::asio::ip::make_address;

constexpr std::uint16_t kPort = 7893;

NftTableSpec epoch_spec(std::uint64_t epoch, std::vector<std::uint16_t> tcp_ports) {
  NftTableSpec s;
  s.epoch = epoch;
  s.tproxy_port = kPort;
  for (auto port : tcp_ports) {
    NftRule r;
    r.proto = ProtoMatch::tcp;
    r.dst = {Cidr::parse("203.0.113.0/24"), Cidr::parse("2001:db8::/32")};
    r.ports = {{port, port}};
    s.rules.push_back(r);
  }
  return s;
}

TEST(ReclaimNeedsRootNetns, DestroyedBypassedTcpFlowReconnectsClaimedWhileClaimedFlowsKeepEveryByte) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  auto in = w.app.enter();
  NftTable nft;
  PolicyRoutes routes({.fwmark = 1, .table = 100});
  routes.install();

  for (std::string ip : {kWorldV4, kWorldV6}) {
    SCOPED_TRACE(ip);
    const bool v4 = ip.find(':') == std::string::npos;
    UniqueFd relay_listener = open_tproxy_tcp_listener({make_address(v4 ? "127.0.0.1" : "::1"), kPort});
    nft.apply(epoch_spec(1, {443}));  // epoch A: claim :443, bypass the rest

    // A claimed flow (:443, held by the "relay") and a bypassed one (:80, carried by the OS).
    int claimed_app = tcp_connect(ip, 443);
    ASSERT_GE(claimed_app, 0);
    UniqueFd claimed_relay(accept_within(relay_listener.get()));
    ASSERT_TRUE(claimed_relay);
    int bypassed_app = tcp_connect(ip, 80);
    ASSERT_GE(bypassed_app, 0);
    UniqueFd bypassed_world(accept_within(w.tcp80));
    ASSERT_TRUE(bypassed_world);

    // Epoch B also claims :80. Surgical: destroy exactly the app's :80 socket.
    nft.apply(epoch_spec(2, {443, 80}));
    SockDiag diag;
    const relay::Endpoint app_ep = local_endpoint(bypassed_app), dst{make_address(ip), 80};
    std::vector<SocketInfo> victims;
    for (const auto& s : diag.dump())
      if (s.proto == relay::Proto::tcp && s.local == app_ep && s.remote == dst) victims.push_back(s);
    ASSERT_EQ(victims.size(), 1u);
    ASSERT_EQ(diag.destroy(victims[0]).result, DestroyResult::destroyed);

    char b;
    ASSERT_TRUE(wait_readable(bypassed_app));
    EXPECT_EQ(::recv(bypassed_app, &b, 1, 0), -1);
    EXPECT_EQ(errno, ECONNABORTED);
    ::close(bypassed_app);

    // The app reconnects: now claimed, under epoch 2.
    int again = tcp_connect(ip, 80);
    ASSERT_GE(again, 0);
    ASSERT_EQ(to_string(landed(relay_listener.get(), w.tcp80)), std::string("relay"));
    UniqueFd again_relay(accept_within(relay_listener.get()));
    EXPECT_EQ(original_destination(again_relay.get()), dst);
    auto e = Conntrack().find(relay::Proto::tcp, local_endpoint(again), dst);
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->mark, CtMark::encode(Verdict::claim, 2));

    // The :443 flow never noticed: bytes flow both ways, in order.
    std::string payload(60000, '\0');
    for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>('a' + i % 26);
    ASSERT_TRUE(send_all(claimed_app, payload));
    EXPECT_EQ(recv_n(claimed_relay.get(), payload.size()), payload);
    ASSERT_TRUE(send_all(claimed_relay.get(), "pong"));
    EXPECT_EQ(recv_n(claimed_app, 4), "pong");
    ::close(claimed_app);
    ::close(again);
  }
}

}  // namespace
}  // namespace flowrelay::linux_host
