// Simulated NEAppProxyTCPFlows through the real relay to real loopback servers: integrity at
// scale, half-closes and resets each way, a stalled app, a failed dial, 2,000 flows at once.

#include "tests/apple/ne_sim.hpp"
#include "tests/apple/relay_rig.hpp"
#include "tests/support/echo_child.hpp"
#include "tests/support/net.hpp"

#include <gtest/gtest.h>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <thread>

namespace flowrelay::apple::sim {
namespace {

using flowrelay::test::Fd;

relay::Endpoint loopback_endpoint(std::uint16_t port) {
  return {boost::asio::ip::make_address("127.0.0.1"), port};
}

/// A listener on 127.0.0.1; accept() waits up to 10 s for the relay's connection.
class FarEnd {
 public:
  FarEnd() : listener_(flowrelay::test::tcp_listen()) {}
  relay::Endpoint endpoint() const { return loopback_endpoint(flowrelay::test::local_port(listener_.get())); }
  Fd accept() {
    pollfd p{listener_.get(), POLLIN, 0};
    if (::poll(&p, 1, 10000) != 1) throw std::runtime_error("no connection from the relay within 10 s");
    return flowrelay::test::tcp_accept(listener_.get());
  }

 private:
  Fd listener_;
};

struct Bulk {
  Delivery delivery;
  std::uint64_t bytes;
};

class NeRelayBulkTest : public ::testing::TestWithParam<Bulk> {};

TEST_P(NeRelayBulkTest, BytesArriveExactlyEachWayAtOnce) {
  const auto [delivery, total] = GetParam();
  auto env = std::make_shared<SimEnv>(delivery, 50us, 16);
  RelayRig rig;
  FarEnd server;
  auto app = std::make_shared<SimTcp>(env, SimTcp::Options{.keep_received = false});
  rig.adopt_tcp(app->ops(), server.endpoint());
  Fd s = server.accept();

  app->app_stream(total, 1, /*then_eof=*/true);
  std::string down_sent;
  std::thread pusher([&] {
    down_sent = flowrelay::test::send_random(s.get(), total, 2);
    ::shutdown(s.get(), SHUT_WR);
  });
  auto [up_bytes, up_hash] = flowrelay::test::recv_hash(s.get());
  pusher.join();

  ASSERT_TRUE(app->wait_closed(120s));
  ASSERT_TRUE(app->wait_stream_sent(0ms));
  EXPECT_EQ(up_bytes, total);
  EXPECT_EQ(up_hash, app->sent_hash());
  EXPECT_EQ(app->received_bytes(), total);
  EXPECT_EQ(app->received_hash(), down_sent);
  EXPECT_TRUE(app->eof_seen());
  EXPECT_FALSE(app->reset_seen());
  EXPECT_LE(app->max_in_flight(), rig.relay().options().flow_buffer_bytes);
  ASSERT_TRUE(rig.wait_closed(1));
  EXPECT_TRUE(env->wait_all_given_back());
  EXPECT_EQ(rig.pool_live(), 0);
  EXPECT_TRUE(env->violations().empty());
}

INSTANTIATE_TEST_SUITE_P(Deliveries, NeRelayBulkTest,
                         ::testing::Values(Bulk{Delivery::other_thread, 256ull << 20}, Bulk{Delivery::inline_call, 32ull << 20},
                                           Bulk{Delivery::late, 32ull << 20}, Bulk{Delivery::burst, 32ull << 20}),
                         [](const auto& info) {
                           return std::string(to_string(info.param.delivery)) + "_" +
                                  std::to_string(info.param.bytes >> 20) + "MiB";
                         });

class NeRelayTest : public ::testing::Test {
 protected:
  void TearDown() override { EXPECT_TRUE(env->violations().empty()); }
  std::shared_ptr<SimEnv> env = std::make_shared<SimEnv>(Delivery::other_thread);
};

TEST_F(NeRelayTest, TheAppsHalfCloseLetsTheResponseThrough) {
  RelayRig rig;
  FarEnd server;
  auto app = std::make_shared<SimTcp>(env, SimTcp::Options{.keep_received = false});
  rig.adopt_tcp(app->ops(), server.endpoint());
  Fd s = server.accept();
  app->app_send("GET / HTTP/1.0\r\n\r\n");
  app->app_shutdown_write();
  std::string request(18, '\0');
  ASSERT_EQ(flowrelay::test::recv_all(s.get(), request.data(), request.size()), request.size());
  char more;
  EXPECT_EQ(::recv(s.get(), &more, 1, 0), 0);  // the server sees the app's FIN...
  const auto sent = flowrelay::test::send_random(s.get(), 10 << 20, 3);  // ...and still answers
  ::shutdown(s.get(), SHUT_WR);
  ASSERT_TRUE(app->wait_closed());
  EXPECT_EQ(app->received_bytes(), 10u << 20);
  EXPECT_EQ(app->received_hash(), sent);
  EXPECT_TRUE(app->eof_seen());
}

TEST_F(NeRelayTest, TheServersHalfCloseLeavesTheAppSending) {
  RelayRig rig;
  FarEnd server;
  auto app = std::make_shared<SimTcp>(env);
  rig.adopt_tcp(app->ops(), server.endpoint());
  Fd s = server.accept();
  flowrelay::test::send_all(s.get(), "banner", 6);
  ::shutdown(s.get(), SHUT_WR);
  ASSERT_TRUE(app->wait_write_closed());
  EXPECT_EQ(app->received(), "banner");
  EXPECT_EQ(app->write_close_error(), NeFlowError::none);  // EOF for the app, not a reset
  EXPECT_FALSE(app->read_closed());
  app->app_send("still talking");
  app->app_shutdown_write();
  std::string got(13, '\0');
  ASSERT_EQ(flowrelay::test::recv_all(s.get(), got.data(), got.size()), got.size());
  EXPECT_EQ(got, "still talking");
  char more;
  EXPECT_EQ(::recv(s.get(), &more, 1, 0), 0);
  ASSERT_TRUE(app->wait_closed());
  EXPECT_FALSE(app->reset_seen());
}

TEST_F(NeRelayTest, AnAppResetResetsTheServer) {
  RelayRig rig;
  FarEnd server;
  auto app = std::make_shared<SimTcp>(env);
  rig.adopt_tcp(app->ops(), server.endpoint());
  Fd s = server.accept();
  app->app_send("x");
  char c;
  ASSERT_EQ(::recv(s.get(), &c, 1, 0), 1);
  app->app_reset();
  EXPECT_EQ(::recv(s.get(), &c, 1, 0), -1);
  EXPECT_EQ(errno, ECONNRESET);
  ASSERT_TRUE(rig.wait_closed(1));
}

TEST_F(NeRelayTest, AServerResetResetsTheApp) {
  RelayRig rig;
  FarEnd server;
  auto app = std::make_shared<SimTcp>(env);
  rig.adopt_tcp(app->ops(), server.endpoint());
  Fd s = server.accept();
  linger l{1, 0};
  ::setsockopt(s.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
  s.reset();  // RST
  ASSERT_TRUE(app->wait_closed());
  EXPECT_TRUE(app->reset_seen());
  EXPECT_NE(app->write_close_error(), NeFlowError::none);
}

TEST_F(NeRelayTest, AnAppThatReadsNothingHoldsTheRelayAtTheWatermark) {
  RelayRig rig;
  FarEnd server;
  auto app = std::make_shared<SimTcp>(env, SimTcp::Options{.stall_writes = true, .keep_received = false});
  rig.adopt_tcp(app->ops(), server.endpoint());
  Fd s = server.accept();
  constexpr std::uint64_t kPushed = 64ull << 20;
  std::string sent;
  std::thread pusher([&] {
    sent = flowrelay::test::send_random(s.get(), kPushed, 4);
    ::shutdown(s.get(), SHUT_WR);
  });
  const std::size_t watermark = rig.relay().options().flow_buffer_bytes;
  ASSERT_TRUE(app->wait_in_flight_at_least(watermark));  // NE holds the watermark's worth...
  app->release_writes();                                 // ...until the app reads again
  pusher.join();
  ASSERT_TRUE(app->wait_write_closed(60s));  // the server's EOF, after every byte
  app->app_shutdown_write();
  ASSERT_TRUE(app->wait_closed());
  EXPECT_EQ(app->received_bytes(), kPushed);
  EXPECT_EQ(app->received_hash(), sent);
  EXPECT_LE(app->max_in_flight(), watermark);
  ASSERT_TRUE(rig.wait_closed(1));
  const auto flow = rig.closed_flows().at(0);
  EXPECT_LE(flow.queued_peak, watermark + buffers::kLargeChunk);  // the relay's own queue, bounded too
}

TEST_F(NeRelayTest, AnUnreachableDestinationResetsTheAppOnly) {
  RelayRig rig;
  std::uint16_t closed_port;
  {
    Fd probe = flowrelay::test::tcp_listen();
    closed_port = flowrelay::test::local_port(probe.get());
  }  // nothing listens there now: the dial is refused
  FarEnd server;
  auto doomed = std::make_shared<SimTcp>(env);
  auto fine = std::make_shared<SimTcp>(env);
  rig.adopt_tcp(doomed->ops(), loopback_endpoint(closed_port));
  rig.adopt_tcp(fine->ops(), server.endpoint());
  Fd s = server.accept();
  ASSERT_TRUE(doomed->wait_closed());
  EXPECT_TRUE(doomed->reset_seen());
  fine->app_send("ok?");
  std::string got(3, '\0');
  ASSERT_EQ(flowrelay::test::recv_all(s.get(), got.data(), 3), 3u);
  flowrelay::test::send_all(s.get(), "ok!", 3);
  ASSERT_TRUE(fine->wait_received(3));
  EXPECT_EQ(fine->received(), "ok!");
  EXPECT_EQ(rig.relay().counters().dial_failures, 1u);
}

TEST(NeRelayScaleTest, TwoThousandFlowsAtOnce) {
  flowrelay::test::EchoChild echo;  // forks: before any thread of this test
  flowrelay::test::raise_fd_limit();
  auto env = std::make_shared<SimEnv>(Delivery::other_thread);
  constexpr int kFlows = 2000;
  RelayRig rig;
  std::vector<std::shared_ptr<SimTcp>> apps;
  for (int i = 0; i < kFlows; ++i) {
    apps.push_back(std::make_shared<SimTcp>(env));
    rig.adopt_tcp(apps.back()->ops(), loopback_endpoint(echo.port()));
  }
  for (int i = 0; i < kFlows; ++i) apps[i]->app_send("flow " + std::to_string(i));
  for (int i = 0; i < kFlows; ++i) {
    const std::string want = "flow " + std::to_string(i);
    ASSERT_TRUE(apps[i]->wait_received(want.size())) << i;
    EXPECT_EQ(apps[i]->received(), want);
  }
  EXPECT_EQ(rig.relay().active(), std::size_t(kFlows));  // all open at once
  for (auto& a : apps) a->app_shutdown_write();
  for (auto& a : apps) ASSERT_TRUE(a->wait_closed(30s));
  ASSERT_TRUE(rig.wait_closed(kFlows, 30s));
  EXPECT_TRUE(env->wait_all_given_back());
  EXPECT_EQ(rig.pool_live(), 0);
  EXPECT_TRUE(env->violations().empty());
}

}  // namespace
}  // namespace flowrelay::apple::sim
