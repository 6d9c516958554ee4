// NeTcpFlow against the strict simulator: the NE rules, zero copy both ways, backpressure,
// half-closes and teardown, with completions arriving from other threads.

#include "extension/apple/ne_tcp_flow.hpp"

#include "tests/apple/bridge_harness.hpp"
#include "tests/apple/ne_sim.hpp"

#include <gtest/gtest.h>

#include <boost/asio/error.hpp>

namespace flowrelay::apple::sim {
namespace {

std::string text(const buffers::Chain& chain) {
  std::string out;
  auto g = chain.gather();
  for (const auto& b : g) out.append(static_cast<const char*>(b.data()), b.size());
  return out;
}

class NeTcpFlowTest : public ::testing::TestWithParam<Delivery> {
 protected:
  void TearDown() override { EXPECT_TRUE(env->violations().empty()); }

  std::shared_ptr<SimEnv> env = std::make_shared<SimEnv>(GetParam(), 200us, 8);
  FlowDriver driver;
};

TEST_P(NeTcpFlowTest, ReadsHandTheAppsBytesToTheRelayWithoutCopying) {
  auto sim = std::make_shared<SimTcp>(env);
  driver.open(sim->ops());
  sim->app_send("hello, ");
  sim->app_send("relay");
  auto r = driver.read(12);
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(text(r.chain), "hello, relay");
  // The relay's buffers view the very bytes the simulated NSData objects hold.
  const auto lent = sim->read_pointers();
  ASSERT_EQ(lent.size(), 2u);
  ASSERT_EQ(r.chain.buffer_count(), 2u);
  auto g = r.chain.gather();
  EXPECT_EQ(static_cast<const std::byte*>(g.begin()[0].data()), lent[0]);
  EXPECT_EQ(static_cast<const std::byte*>(g.begin()[1].data()), lent[1]);
  EXPECT_TRUE(r.chain.front().external());
  driver.drop(r.chain);
  driver.close();
  EXPECT_TRUE(env->wait_all_given_back());
}

TEST_P(NeTcpFlowTest, WritesHandPoolChunksToNEWithoutCopying) {
  auto sim = std::make_shared<SimTcp>(env);
  driver.open(sim->ops());
  ASSERT_EQ(driver.when_writable().get(), boost::system::error_code());
  auto [chain, pointers] = driver.chunks(40 * 1024, 'x');
  ASSERT_EQ(pointers.size(), 3u);
  auto w = driver.write(chain);
  EXPECT_EQ(w.bytes, 40u * 1024);
  EXPECT_FALSE(w.would_block);
  ASSERT_TRUE(sim->wait_received(40 * 1024));
  EXPECT_EQ(sim->write_pointers(), pointers);  // the pointers NE received are the chunks' own
  EXPECT_TRUE(sim->writes_were_chunks());
  EXPECT_EQ(sim->received(), std::string(40 * 1024, 'x'));
  driver.close();
}

TEST_P(NeTcpFlowTest, NothingIsReadOrWrittenBeforeTheOpenCompletes) {
  // The app sends at once and the relay wants to write at once; the open completes later.
  auto late = std::make_shared<SimEnv>(Delivery::late, 20ms);
  auto sim = std::make_shared<SimTcp>(late);
  sim->app_send("early");
  driver.open(sim->ops());
  auto [chain, pointers] = driver.chunks(100, 'y');
  auto w = driver.write(chain);
  EXPECT_EQ(w.bytes, 0u);
  EXPECT_TRUE(w.would_block);
  EXPECT_EQ(sim->writes(), 0u);
  EXPECT_EQ(driver.when_writable().get(), boost::system::error_code());  // resumes once open
  EXPECT_TRUE(sim->wait_opened(0ms));
  EXPECT_EQ(driver.write(chain).bytes, 100u);
  auto r = driver.read(5);
  EXPECT_EQ(text(r.chain), "early");
  driver.drop(r.chain);
  driver.close();
  EXPECT_TRUE(late->violations().empty());
  driver.destroy();
  late->deliver.quiesce();  // its completions hold `sim`, and `sim` holds `late`: none may outlive the test
}

TEST_P(NeTcpFlowTest, AnEmptyReadIsEofAfterTheQueuedBytes) {
  auto sim = std::make_shared<SimTcp>(env);
  driver.open(sim->ops());
  sim->app_send("last words");
  sim->app_shutdown_write();
  auto r = driver.read(1 << 20);
  EXPECT_TRUE(r.eof);
  EXPECT_EQ(text(r.chain), "last words");
  driver.drop(r.chain);
  // The other direction is still open: a half-close, not the end of the flow.
  EXPECT_FALSE(sim->write_closed());
  auto [chain, pointers] = driver.chunks(3, 'z');
  EXPECT_EQ(driver.write(chain).bytes, 3u);
  ASSERT_TRUE(sim->wait_received(3));
  driver.close();
  ASSERT_TRUE(sim->wait_closed());
  EXPECT_TRUE(sim->eof_seen());
}

TEST_P(NeTcpFlowTest, BytesInFlightNeverPassTheWatermark) {
  auto sim = std::make_shared<SimTcp>(env, SimTcp::Options{.stall_writes = true});
  constexpr std::size_t kWatermark = 60000;  // not a multiple of the 16 KiB chunks
  driver.open(sim->ops(), kWatermark);
  ASSERT_EQ(driver.when_writable().get(), boost::system::error_code());  // open, as the flow sees it
  auto [chain, pointers] = driver.chunks(200 * 1024, 'w');
  auto w = driver.write(chain);
  EXPECT_EQ(w.bytes, kWatermark);  // exactly up to the mark: the last chunk is sliced, not copied
  EXPECT_TRUE(w.would_block);
  auto writable = driver.when_writable();
  EXPECT_EQ(writable.wait_for(50ms), std::future_status::timeout);  // nothing completes: it waits
  sim->release_writes();
  EXPECT_EQ(writable.get(), boost::system::error_code());
  while (!chain.empty()) {
    driver.write(chain);
    sim->release_writes();
    ASSERT_EQ(driver.when_writable().get(), boost::system::error_code());
  }
  ASSERT_TRUE(sim->wait_received(200 * 1024));
  EXPECT_LE(sim->max_in_flight(), kWatermark);
  driver.close();
}

TEST_P(NeTcpFlowTest, AHalfCloseWaitsForTheWritesInFlight) {
  auto sim = std::make_shared<SimTcp>(env, SimTcp::Options{.stall_writes = true});
  driver.open(sim->ops());
  ASSERT_EQ(driver.when_writable().get(), boost::system::error_code());
  auto [chain, pointers] = driver.chunks(1000, 'h');
  EXPECT_EQ(driver.write(chain).bytes, 1000u);
  driver.shutdown_write();
  EXPECT_FALSE(sim->wait_write_closed(30ms));  // the write is still in flight
  sim->release_writes();
  ASSERT_TRUE(sim->wait_write_closed());
  EXPECT_TRUE(sim->eof_seen());
  EXPECT_FALSE(sim->read_closed());  // the app may still send
  sim->app_send("after");
  auto r = driver.read(5);
  EXPECT_EQ(text(r.chain), "after");
  driver.drop(r.chain);
  driver.close();
}

TEST_P(NeTcpFlowTest, AbortResetsBothSidesAndWakesAParkedReader) {
  auto sim = std::make_shared<SimTcp>(env);
  driver.open(sim->ops());
  ASSERT_TRUE(sim->wait_opened());
  auto ready = driver.when_readable();
  driver.abort();
  EXPECT_EQ(ready.get(), boost::asio::error::operation_aborted);
  ASSERT_TRUE(sim->wait_closed());
  EXPECT_TRUE(sim->reset_seen());
  EXPECT_EQ(sim->write_close_error(), NeFlowError::aborted);
}

TEST_P(NeTcpFlowTest, AFailedOpenFailsTheFlow) {
  auto sim = std::make_shared<SimTcp>(env, SimTcp::Options{.open_result = NeFlowError::refused});
  driver.open(sim->ops());
  auto r = driver.read(1);
  EXPECT_EQ(r.ec, boost::asio::error::connection_refused);
  EXPECT_EQ(sim->reads(), 0u);
  EXPECT_NE(driver.when_writable().get(), boost::system::error_code());
}

TEST_P(NeTcpFlowTest, AnAppResetIsAConnectionReset) {
  auto sim = std::make_shared<SimTcp>(env);
  driver.open(sim->ops());
  ASSERT_TRUE(sim->wait_opened());
  sim->app_reset();
  auto r = driver.read(1);
  EXPECT_EQ(r.ec, boost::asio::error::connection_reset);
}

TEST_P(NeTcpFlowTest, CompletionsAfterTheFlowIsGoneGiveTheirBytesBack) {
  auto late = std::make_shared<SimEnv>(Delivery::late, 20ms);
  auto sim = std::make_shared<SimTcp>(late);
  driver.open(sim->ops());
  ASSERT_EQ(driver.when_writable().get(), boost::system::error_code());  // open, and its first read issued
  ASSERT_EQ(sim->reads(), 1u);
  sim->app_send(std::string(1000, 'q'));  // that read's completion is on its way...
  driver.destroy();                       // ...when the flow goes
  ASSERT_TRUE(sim->wait_closed());
  EXPECT_TRUE(late->wait_all_given_back());
  EXPECT_TRUE(late->violations().empty());
  EXPECT_EQ(driver.pool_stats().classes[2].live, 0);  // no control block kept for the late bytes
  late->deliver.quiesce();
}

INSTANTIATE_TEST_SUITE_P(Deliveries, NeTcpFlowTest,
                         ::testing::Values(Delivery::inline_call, Delivery::other_thread, Delivery::late,
                                           Delivery::burst),
                         [](const auto& info) { return std::string(to_string(info.param)); });

}  // namespace
}  // namespace flowrelay::apple::sim
