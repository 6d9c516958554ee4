// Simulated NEAppProxyUDPFlows through the real relay to real UDP echo servers: every reply from
// the endpoint it answers, EOF by empty arrays, nil arrays read again, replies past the watermark
// dropped rather than queued.

#include "extension/apple/ne_udp_flow.hpp"

#include "tests/apple/ne_sim.hpp"
#include "tests/apple/relay_rig.hpp"
#include "tests/support/udp_echo.hpp"

#include <gtest/gtest.h>

#include <map>

namespace flowrelay::apple::sim {
namespace {

/// Waits for a condition only the relay can tell (its snapshots), checking until `timeout`.
template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

class NeUdpFlowTest : public ::testing::Test {
 protected:
  void TearDown() override { EXPECT_TRUE(env->violations().empty()); }
  std::shared_ptr<SimEnv> env = std::make_shared<SimEnv>(Delivery::other_thread);
};

TEST_F(NeUdpFlowTest, EveryReplyComesFromTheDestinationItAnswers) {
  flowrelay::test::UdpEcho a, b;
  RelayRig rig;
  auto app = std::make_shared<SimUdp>(env);
  rig.adopt_udp(app->ops(), a.endpoint());
  constexpr int kEach = 100;
  for (int i = 0; i < kEach; ++i) {
    std::string to_a(1, 'a'), to_b(1, 'b');  // (operator+ on a literal trips GCC 12's -Wrestrict)
    to_a += std::to_string(i);
    to_b += std::to_string(i);
    to_b.append(std::size_t(i) * 10, '.');
    app->app_send(to_a, a.endpoint());
    app->app_send(to_b, b.endpoint());
  }
  ASSERT_TRUE(app->wait_replies(2 * kEach));
  std::map<char, int> per;
  for (const auto& r : app->replies()) {
    ASSERT_FALSE(r.payload.empty());
    EXPECT_EQ(r.from, r.payload[0] == 'a' ? a.endpoint() : b.endpoint()) << r.payload;
    ++per[r.payload[0]];
  }
  EXPECT_EQ(per['a'], kEach);
  EXPECT_EQ(per['b'], kEach);
  EXPECT_TRUE(app->replies_were_chunks());  // replies went to NE as the relay's own chunks
  EXPECT_EQ(rig.relay().active(), 1u);      // one association for the one app flow
}

TEST_F(NeUdpFlowTest, EmptyArraysEndTheAssociation) {
  flowrelay::test::UdpEcho echo;
  RelayRig rig;
  auto app = std::make_shared<SimUdp>(env);
  rig.adopt_udp(app->ops(), echo.endpoint());
  app->app_send("one", echo.endpoint());
  ASSERT_TRUE(app->wait_replies(1));
  app->app_close();
  ASSERT_TRUE(app->wait_closed());  // the provider closed both sides in turn
  ASSERT_TRUE(rig.wait_closed(1));
  EXPECT_EQ(rig.relay().active(), 0u);
  EXPECT_TRUE(env->wait_all_given_back());
}

TEST_F(NeUdpFlowTest, NilArraysMeanReadAgain) {
  flowrelay::test::UdpEcho echo;
  RelayRig rig;
  auto app = std::make_shared<SimUdp>(env, SimUdp::Options{.nil_reads = 3});
  rig.adopt_udp(app->ops(), echo.endpoint());
  ASSERT_TRUE(app->wait_opened());
  ASSERT_TRUE(eventually([&] { return app->nil_delivered() == 3 && app->reads() >= 4; }));
  app->app_send("after nothing", echo.endpoint());
  ASSERT_TRUE(app->wait_replies(1));
  EXPECT_EQ(app->replies()[0].payload, "after nothing");
  EXPECT_FALSE(app->closed());  // nil is not EOF
}

TEST_F(NeUdpFlowTest, RepliesPastTheWatermarkAreDroppedNotQueued) {
  flowrelay::test::UdpEcho echo;
  relay::RelayOptions options;
  options.flow_buffer_bytes = 4096;
  RelayRig rig(1, options);
  auto app = std::make_shared<SimUdp>(env, SimUdp::Options{.stall_writes = true});
  rig.adopt_udp(app->ops(), echo.endpoint());
  constexpr int kSent = 20;
  for (int i = 0; i < kSent; ++i) app->app_send(std::string(1000, char('a' + i)), echo.endpoint());
  ASSERT_TRUE(eventually([&] {
    auto flows = rig.relay().snapshot();
    return flows.size() == 1 && flows[0].dropped + flows[0].bytes_down / 1000 == kSent;
  }));
  const auto flow = rig.relay().snapshot().at(0);
  EXPECT_EQ(flow.bytes_down, 4000u);  // four replies fit under 4096 bytes in flight...
  EXPECT_EQ(flow.dropped, 16u);       // ...the rest were dropped, as a full socket would
  ASSERT_TRUE(app->wait_replies(4));  // handed to NE at the end of the shard's turn
  EXPECT_EQ(app->replies().size(), 4u);
  app->release_writes();
  app->app_send("later", echo.endpoint());  // with the app reading again, replies flow again
  ASSERT_TRUE(app->wait_replies(5));
  EXPECT_EQ(app->replies().back().payload, "later");
}

}  // namespace
}  // namespace flowrelay::apple::sim
