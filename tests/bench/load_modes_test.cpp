#include "load_client.hpp"
#include "load_server.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <string>

namespace fb = flowrelay::bench;

namespace {

// Every mode against the bench's own server on loopback, briefly: the numbers are not judged
// here (benchmarks do that), only that each mode moves data and counts what it moved.
class LoadModes : public ::testing::Test {
protected:
  void SetUp() override { server_.start(); }
  std::string tcp_target() const { return "127.0.0.1:" + std::to_string(server_.tcp_port()); }
  std::string udp_target() const { return "127.0.0.1:" + std::to_string(server_.udp_port()); }

  fb::LoadServer server_{{"127.0.0.1:0", "127.0.0.1:0", 2}};
};

constexpr double short_run = 0.3;

} // namespace

TEST_F(LoadModes, StreamUploadCountsBytesSent) {
  fb::StreamOptions o;
  o.target = tcp_target();
  o.duration_s = short_run;
  o.flows = 2;
  o.direction = fb::Direction::up;
  auto r = fb::run_stream(o);
  EXPECT_EQ(r.errors, 0u);
  EXPECT_GT(r.bytes_up, 0u);
  EXPECT_EQ(r.bytes_down, 0u);
  ASSERT_EQ(r.flow_bytes.size(), 2u);
  EXPECT_GT(r.flow_bytes[0], 0u);
  EXPECT_GT(r.flow_bytes[1], 0u);
  EXPECT_GT(fb::to_report(o, r).number("gbit_s"), 0.0);
}

TEST_F(LoadModes, StreamDownloadAndBothOnTwoThreads) {
  fb::StreamOptions o;
  o.target = tcp_target();
  o.duration_s = short_run;
  o.flows = 3;
  o.threads = 2;
  o.direction = fb::Direction::down;
  auto down = fb::run_stream(o);
  EXPECT_EQ(down.errors, 0u);
  EXPECT_GT(down.bytes_down, 0u);
  EXPECT_EQ(down.bytes_up, 0u);
  ASSERT_EQ(down.flow_bytes.size(), 3u);
  // Flows land on both server threads: each must be served.
  for (auto bytes : down.flow_bytes) EXPECT_GT(bytes, 0u);

  o.direction = fb::Direction::both;
  auto both = fb::run_stream(o);
  EXPECT_EQ(both.errors, 0u);
  EXPECT_GT(both.bytes_down, 0u);
  EXPECT_GT(both.bytes_up, 0u);
}

TEST_F(LoadModes, RequestResponseRecordsEveryTransaction) {
  fb::RrOptions o;
  o.target = tcp_target();
  o.duration_s = short_run;
  o.flows = 2;
  o.size = 64;
  auto r = fb::run_rr(o);
  EXPECT_EQ(r.errors, 0u);
  EXPECT_GT(r.transactions, 10u);
  EXPECT_EQ(r.latency_ns.count(), r.transactions);
  EXPECT_GT(r.latency_ns.percentile(0.5), 0u);
  EXPECT_LE(r.latency_ns.percentile(0.5), r.latency_ns.percentile(0.99));
  EXPECT_LE(r.latency_ns.percentile(0.99), r.latency_ns.max());
  const auto report = fb::to_report(o, r);
  EXPECT_GT(report.number("rate"), 0.0);
  EXPECT_GT(report.number("p50_us"), 0.0);
}

TEST_F(LoadModes, RequestResponseWithLargeMessages) {
  fb::RrOptions o;
  o.target = tcp_target();
  o.duration_s = short_run;
  o.size = 65536; // the largest allowed, four times the server's echo buffer: it comes back in pieces
  auto r = fb::run_rr(o);
  EXPECT_EQ(r.errors, 0u);
  EXPECT_GT(r.transactions, 0u);
}

TEST_F(LoadModes, ConnectionsPerSecondSequentialAndConcurrent) {
  const auto accepted_before = server_.tcp_accepted();
  fb::CpsOptions o;
  o.target = tcp_target();
  o.duration_s = short_run;
  auto seq = fb::run_cps(o);
  EXPECT_EQ(seq.errors, 0u);
  EXPECT_GT(seq.connections, 10u);
  EXPECT_EQ(seq.latency_ns.count(), seq.connections);

  o.flows = 4;
  o.threads = 2;
  auto conc = fb::run_cps(o);
  EXPECT_EQ(conc.errors, 0u);
  EXPECT_GT(conc.connections, 10u);
  // Each counted connection was a real accept on the server.
  EXPECT_GE(server_.tcp_accepted() - accepted_before, seq.connections + conc.connections);
}

TEST_F(LoadModes, CpsWithAPayloadLongerThanOneLengthByte) {
  fb::CpsOptions o;
  o.target = tcp_target();
  o.duration_s = short_run;
  o.size = 1000; // length prefix 0x03e8: both bytes matter
  auto r = fb::run_cps(o);
  EXPECT_EQ(r.errors, 0u);
  EXPECT_GT(r.connections, 0u);
}

TEST_F(LoadModes, CpsAgainstAClosedPortCountsErrorsAndEnds) {
  fb::LoadServer other{{"127.0.0.1:0", "", 1}};
  other.start();
  const auto port = other.tcp_port();
  other.stop(); // nothing listens there now
  fb::CpsOptions o;
  o.target = "127.0.0.1:" + std::to_string(port);
  o.duration_s = short_run;
  auto r = fb::run_cps(o);
  EXPECT_EQ(r.connections, 0u);
  EXPECT_GT(r.errors, 0u);
}

TEST_F(LoadModes, UdpWindowedEchoDeliversInOrder) {
  fb::UdpOptions o;
  o.target = udp_target();
  o.duration_s = short_run;
  o.drain_s = 0.1;
  auto r = fb::run_udp(o);
  EXPECT_GT(r.sent, 100u);
  EXPECT_GT(r.received, 0u);
  EXPECT_LE(r.received, r.sent);
  EXPECT_EQ(r.latency_ns.count(), r.received);
  const auto report = fb::to_report(o, r);
  EXPECT_GT(report.number("rate"), 0.0);
  EXPECT_LE(report.number("loss_pct"), 100.0);
}

TEST_F(LoadModes, UdpAtATargetRateSendsAboutThatMany) {
  fb::UdpOptions o;
  o.target = udp_target();
  o.duration_s = 0.5;
  o.drain_s = 0.1;
  o.rate = 2000;
  o.window = 0;
  o.flows = 2;
  auto r = fb::run_udp(o);
  // 2 flows x 2000/s x 0.5 s = 2000 datagrams; the pacer never runs ahead of the schedule.
  EXPECT_LE(r.sent, 2000u + 2u);
  EXPECT_GT(r.sent, 1000u); // generous: a loaded CI machine may fall behind, never ahead
  EXPECT_GT(r.received, 0u);
}

TEST_F(LoadModes, HoldOpensFlowsAndMeasuresMemory) {
  fb::HoldOptions o;
  o.target = tcp_target();
  o.flows = 200;
  o.parallel = 16;
  o.duration_s = 20;
  o.pid = static_cast<int>(::getpid());
  auto r = fb::run_hold(o);
  EXPECT_EQ(r.opened, 200u);
  EXPECT_EQ(r.failed, 0u);
  EXPECT_GT(r.memory_before, 0);
  EXPECT_GT(r.memory_after, 0);
  const auto report = fb::to_report(o, r);
  EXPECT_NE(report.find("bytes_per_flow"), nullptr);
}

TEST(ProcessMemory, ReadsRssAndTreePssOfThisProcess) {
  const int self = static_cast<int>(::getpid());
  EXPECT_GT(fb::process_memory(self, false), 0);
  EXPECT_GT(fb::process_memory(self, true), 0);
  EXPECT_EQ(fb::process_memory(0, false), -1);
}

TEST(HostPort, ParsesNumericAddressesOnly) {
  auto v4 = fb::parse_host_port("127.0.0.1:9000");
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->port, 9000);
  auto v6 = fb::parse_host_port("[::1]:80");
  ASSERT_TRUE(v6);
  EXPECT_TRUE(v6->address.is_v6());
  EXPECT_FALSE(fb::parse_host_port("localhost:80"));
  EXPECT_FALSE(fb::parse_host_port("127.0.0.1:70000"));
  EXPECT_FALSE(fb::parse_host_port("127.0.0.1"));
}
