// The seed scenario on simulated macOS, through the real provider core and reclaim controller:
// epoch A claims tcp/443; flows to :80 and udp/5353 are answered NO and carried by the system;
// epoch B arrives by KVO and claims them too. macOS cannot close a flow answered NO, so
// `surgical` falls back to cancel-and-restart; the system closes every flow, the apps reconnect,
// and the far ends see the relay carry :80 and 5353. Also: a bad push keeps epoch A, and a burst of
// pushes restarts once, with the next restart held to min_restart_interval_ms.

#include "tests/apple/sim_system.hpp"

#include "extension/control/control_plane.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <cstdio>

namespace flowrelay::apple::sim {
namespace {

namespace json = boost::json;
using std::chrono::milliseconds;

const relay::Endpoint kWeb{boost::asio::ip::make_address("203.0.113.10"), 443};
const relay::Endpoint kHttp{boost::asio::ip::make_address("203.0.113.10"), 80};
const relay::Endpoint kMdns{boost::asio::ip::make_address("203.0.113.53"), 5353};

std::string config(const std::string& extra_rules, int debounce_ms, int min_restart_ms) {
  return R"({"default": "bypass",
    "rules": [{"name": "web", "verdict": "claim", "proto": "tcp", "dst": ["203.0.113.0/24"], "ports": [443]})" +
         extra_rules + R"(],
    "reclaim": {"policy": "surgical", "debounce_ms": )" +
         std::to_string(debounce_ms) + R"(, "drain_ms": 500, "min_restart_interval_ms": )" +
         std::to_string(min_restart_ms) + "}}";
}
const std::string kHttpRule =
    R"(, {"name": "http", "verdict": "claim", "proto": "tcp", "dst": ["203.0.113.0/24"], "ports": [80]})";
const std::string kMdnsRule = R"(, {"name": "mdns", "verdict": "claim", "proto": "udp", "ports": [5353]})";

/// Far ends that answer with the address they saw: 127.0.0.1 is the relay, 127.0.0.2 the system.
class SeedWorld : public ::testing::Test {
 protected:
  SeedWorld() {
    world.map(kWeb, web.endpoint());
    world.map(kHttp, http.endpoint());
    world.map(kMdns, mdns.endpoint());
  }
  json::object epochs(SimSystem& sys) { return json::parse(sys.provider()->app_message("epochs")).as_object(); }
  json::object flows(SimSystem& sys) { return json::parse(sys.provider()->app_message("flows")).as_object(); }

  World world;
  TcpLineEcho web, http;
  flowrelay::test::UdpEcho mdns{"127.0.0.1", /*tell_peer=*/true};
};

TEST_F(SeedWorld, EpochBReclaimsTheBypassedFlowsByCancelAndRestart) {
  SimSystem sys(world, config("", 20, 10000));
  ASSERT_EQ(sys.start(), "");

  // Epoch A: 443 claimed, :80 and udp/5353 answered NO and carried by the system.
  auto a_web = sys.connect_tcp(kWeb);
  auto a_http = sys.connect_tcp(kHttp);
  auto a_mdns = sys.open_udp(kMdns);
  EXPECT_TRUE(a_web->claimed());
  EXPECT_FALSE(a_http->claimed());
  EXPECT_FALSE(a_mdns->claimed());
  EXPECT_EQ(a_web->ask("a-443"), "127.0.0.1 a-443");  // the far end sees the relay...
  EXPECT_EQ(a_http->ask("a-80"), "127.0.0.2 a-80");   // ...and the system, for the NO answers
  EXPECT_EQ(a_mdns->ask("a-5353"), "127.0.0.2 a-5353");
  auto before = flows(sys);
  EXPECT_EQ(before["claimed"].as_int64(), 1);
  EXPECT_EQ(before["bypassed"].as_int64(), 2);  // both NO answers are in the ledger, with epoch 1
  for (const auto& f : before["flows"].as_array())
    if (f.as_object().at("verdict") == "bypass") {
      EXPECT_EQ(f.as_object().at("epoch").as_int64(), 1);
    }

  // Epoch B by KVO: :80 and udp/5353 are claimed now.
  const auto pushed = std::chrono::steady_clock::now();
  sys.save_configuration(config(kHttpRule + kMdnsRule, 20, 10000));
  ASSERT_TRUE(sys.wait_restarts(1));

  // Like macOS, the restart closed every flow, the one that was claimed already included.
  EXPECT_EQ(a_web->ask("b-443"), std::nullopt);
  EXPECT_EQ(a_http->ask("b-80"), std::nullopt);
  EXPECT_EQ(a_mdns->ask("b-5353"), std::nullopt);
  auto b_web = sys.connect_tcp(kWeb);
  auto b_http = sys.connect_tcp(kHttp);
  auto b_mdns = sys.open_udp(kMdns);
  EXPECT_TRUE(b_web->claimed());
  EXPECT_TRUE(b_http->claimed());
  EXPECT_TRUE(b_mdns->claimed());
  EXPECT_EQ(b_http->ask("b-80"), "127.0.0.1 b-80");
  EXPECT_EQ(b_mdns->ask("b-5353"), "127.0.0.1 b-5353");
  EXPECT_EQ(b_web->ask("b-443"), "127.0.0.1 b-443");
  const auto took = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - pushed);

  // The epoch log: the instance that took epoch B fell back from surgical to a restart.
  auto log = epochs(sys);
  EXPECT_EQ(log["restarts"].as_int64(), 1);
  const auto& prev = log.at("previous_instance").as_object();
  const auto& cycle = prev.at("cycles").as_array().back().as_object();
  EXPECT_EQ(cycle.at("from").as_int64(), 1);
  EXPECT_EQ(cycle.at("to").as_int64(), 2);
  EXPECT_EQ(cycle.at("policy"), "surgical");
  EXPECT_EQ(cycle.at("fell_back"), true);
  EXPECT_EQ(cycle.at("restarted"), true);
  EXPECT_EQ(cycle.at("outcome"), "done");
  EXPECT_EQ(cycle.at("planned").as_object().at("reclaim").as_int64(), 2);
  // The new instance started on B and had nothing more to move.
  const auto& history = log.at("history").as_array();
  ASSERT_EQ(history.size(), 1u);
  EXPECT_EQ(history[0].as_object().at("rules").as_int64(), 3);
  std::printf("[ timeline ] epoch B pushed -> :80 and udp/5353 carried by the relay: %lld ms "
              "(cycle %lld ms: apply, plan, fall back, cancelProxyWithError:)\n",
              static_cast<long long>(took.count()), static_cast<long long>(cycle.at("duration_ms").as_int64()));
  EXPECT_TRUE(sys.env()->violations().empty());
}

TEST_F(SeedWorld, ABadPushKeepsTheRunningEpoch) {
  SimSystem sys(world, config("", 20, 10000));
  ASSERT_EQ(sys.start(), "");
  auto carried = sys.connect_tcp(kHttp);
  ASSERT_FALSE(carried->claimed());
  sys.save_configuration(R"({"rules": [{"verdict": "claim", "ports": [80, 70000]}]})");
  std::string error;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (error.empty() && std::chrono::steady_clock::now() < deadline) {
    sys.provider()->with_control_plane([&](control::ControlPlane& cp) {
      for (const auto& e : cp.epochs().history())
        if (e.kind == control::EpochEvent::Kind::rejected) error = e.error;
    });
  }
  EXPECT_NE(error.find("rules[0].ports[1]"), std::string::npos) << error;
  EXPECT_EQ(sys.provider()->epoch(), 1u);
  EXPECT_EQ(sys.restarts(), 0u);
  EXPECT_EQ(carried->ask("still"), "127.0.0.2 still");   // nothing was closed
  EXPECT_FALSE(sys.connect_tcp(kHttp)->claimed());       // epoch A still decides
  EXPECT_TRUE(sys.connect_tcp(kWeb)->claimed());
}

TEST_F(SeedWorld, ABurstOfPushesRestartsOnceAndTheNextRestartWaitsItsInterval) {
  constexpr int kInterval = 1500;
  SimSystem sys(world, config("", 150, kInterval));
  ASSERT_EQ(sys.start(), "");
  auto http_a = sys.connect_tcp(kHttp);
  ASSERT_FALSE(http_a->claimed());

  // Three saves in a row: one debounced epoch, one restart.
  sys.save_configuration(config(R"(, {"name": "http-1", "verdict": "claim", "proto": "tcp", "ports": [80]})", 150, kInterval));
  sys.save_configuration(config(R"(, {"name": "http-2", "verdict": "claim", "proto": "tcp", "ports": [80]})", 150, kInterval));
  sys.save_configuration(config(kHttpRule, 150, kInterval));
  ASSERT_TRUE(sys.wait_restarts(1));
  EXPECT_EQ(sys.cancels().size(), 1u);
  auto log = epochs(sys);
  const auto& prev = log.at("previous_instance").as_object();
  std::size_t accepted = 0;
  for (const auto& e : prev.at("history").as_array()) accepted += e.as_object().at("kind") == "accepted";
  EXPECT_EQ(accepted, 2u);  // A, then the last of the burst
  EXPECT_TRUE(sys.connect_tcp(kHttp)->claimed());

  // Right after that restart, a change that needs another one is held to the interval.
  auto mdns_b = sys.open_udp(kMdns);
  ASSERT_FALSE(mdns_b->claimed());
  const auto pushed = std::chrono::steady_clock::now();
  sys.save_configuration(config(kHttpRule + kMdnsRule, 150, kInterval));
  ASSERT_TRUE(sys.wait_restarts(2, std::chrono::seconds(20)));
  const auto cancels = sys.cancels();
  ASSERT_EQ(cancels.size(), 2u);
  const auto gap = std::chrono::duration_cast<milliseconds>(cancels[1] - cancels[0]);
  EXPECT_GE(gap.count(), kInterval - 5);  // (the 5 ms: between noting the restart and the system seeing it)
  if (pushed - cancels[0] < milliseconds(kInterval - 300)) {
    // The instance that took the change deferred the restart and said so.
    const auto now = epochs(sys);
    const auto& cycles = now.at("previous_instance").as_object().at("cycles").as_array();
    bool deferred = false, ran = false;
    for (const auto& c : cycles) {
      deferred = deferred || c.as_object().at("outcome") == "deferred";
      ran = ran || (c.as_object().at("trigger") == "deferred restart" && c.as_object().at("restarted") == true);
    }
    EXPECT_TRUE(deferred);
    EXPECT_TRUE(ran);
  }
  EXPECT_TRUE(sys.open_udp(kMdns)->claimed());
  std::printf("[ timeline ] restarts %lld ms apart (min_restart_interval_ms %d)\n", static_cast<long long>(gap.count()),
              kInterval);
}

}  // namespace
}  // namespace flowrelay::apple::sim
