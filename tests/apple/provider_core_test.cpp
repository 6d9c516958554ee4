// The provider core on simulated macOS: start and its failures, the verdict from signing id,
// hostname and destination, the bypass ledger, the flow cap answering NO, stop.

#include "extension/apple/provider_core.hpp"

#include "extension/control/config.hpp"
#include "tests/apple/sim_system.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace flowrelay::apple::sim {
namespace {

namespace json = boost::json;

relay::Endpoint ep(const char* a, std::uint16_t p) { return {boost::asio::ip::make_address(a), p}; }

class ProviderCoreTest : public ::testing::Test {
 protected:
  ProviderCoreTest() {
    for (auto p : {443, 8443, 80}) world.map(ep("198.51.100.7", std::uint16_t(p)), far.endpoint());
  }
  json::object flows(SimSystem& sys) { return json::parse(sys.provider()->app_message("flows")).as_object(); }

  World world;
  TcpLineEcho far;
};

TEST_F(ProviderCoreTest, StartInstallsTheFirstEpochsNetworkSettings) {
  const std::string text = R"({"rules": [{"verdict": "claim", "proto": "tcp", "dst": ["198.51.100.0/24"], "ports": [443]}],
                               "apple": {"offer": "claims"}})";
  SimSystem sys(world, text);
  ASSERT_EQ(sys.start(), "");
  EXPECT_EQ(sys.provider()->epoch(), 1u);
  const auto want = network_settings_for(control::parse_config(text, control::PlatformCaps::for_apple()));
  EXPECT_EQ(sys.settings(), want);
  ASSERT_EQ(want.included.size(), 1u);
  EXPECT_EQ(want.included[0].to_string(), "198.51.100.0/24:443 tcp");
  // Offered and claimed; a destination the settings leave out never reaches the provider.
  EXPECT_TRUE(sys.connect_tcp(ep("198.51.100.7", 443))->claimed());
  EXPECT_EQ(sys.provider()->counters().offered_tcp, 1u);
  EXPECT_FALSE(sys.connect_tcp(ep("198.51.100.7", 80))->claimed());
  EXPECT_EQ(sys.provider()->counters().offered_tcp, 1u);
}

TEST_F(ProviderCoreTest, AConfigErrorFailsStartAndNamesThePath) {
  SimSystem sys(world, R"({"rules": [{"verdict": "claim", "uids": [501]}]})");
  const auto error = sys.start();
  EXPECT_NE(error.find("rules[0].uids"), std::string::npos) << error;   // where
  EXPECT_NE(error.find("not supported on apple"), std::string::npos) << error;  // and why
  EXPECT_EQ(sys.provider(), nullptr);
  EXPECT_FALSE(sys.connect_tcp(ep("198.51.100.7", 443))->claimed());  // the system carries everything
}

TEST_F(ProviderCoreTest, VerdictsFollowTheSigningIdTheHostnameAndTheDestination) {
  SimSystem sys(world, R"({"rules": [
      {"name": "browser", "verdict": "claim", "proto": "tcp", "apps": ["com.example.*"], "ports": [443]},
      {"name": "api", "verdict": "claim", "proto": "tcp", "hosts": ["*.example.org"]},
      {"name": "never", "verdict": "bypass", "apps": ["com.example.updater"]}]})");
  ASSERT_EQ(sys.start(), "");
  EXPECT_TRUE(sys.connect_tcp(ep("198.51.100.7", 443), {.signing_id = "com.example.browser"})->claimed());
  EXPECT_FALSE(sys.connect_tcp(ep("198.51.100.7", 443), {.signing_id = "org.other.tool"})->claimed());
  EXPECT_FALSE(sys.connect_tcp(ep("198.51.100.7", 8443), {.signing_id = "com.example.browser"})->claimed());
  EXPECT_TRUE(sys.connect_tcp(ep("198.51.100.7", 8443), {.signing_id = "org.other.tool"}, "api.Example.org")->claimed());
  EXPECT_FALSE(sys.connect_tcp(ep("198.51.100.7", 8443), {.signing_id = "org.other.tool"}, "example.net")->claimed());
  const auto c = sys.provider()->counters();
  EXPECT_EQ(c.claimed_tcp, 2u);
  EXPECT_EQ(c.bypassed, 3u);
}

TEST_F(ProviderCoreTest, NoAnswersAreLedgeredWithTheirEpochAndApp) {
  SimSystem sys(world, R"({"rules": [{"verdict": "claim", "proto": "tcp", "ports": [443]}]})");
  ASSERT_EQ(sys.start(), "");
  auto carried = sys.connect_tcp(ep("198.51.100.7", 80), {.signing_id = "com.example.mail", .pid = 77}, "mail.example.com");
  ASSERT_FALSE(carried->claimed());
  EXPECT_EQ(carried->ask("hi"), "127.0.0.2 hi");  // the system carries it
  auto f = flows(sys);
  EXPECT_EQ(f["bypassed"].as_int64(), 1);
  const auto& entry = f["flows"].as_array().at(0).as_object();
  EXPECT_EQ(entry.at("verdict"), "bypass");
  EXPECT_EQ(entry.at("epoch").as_int64(), 1);
  EXPECT_EQ(entry.at("dst"), "198.51.100.7:80");
  EXPECT_EQ(entry.at("app"), "com.example.mail");
  EXPECT_EQ(entry.at("host"), "mail.example.com");
  EXPECT_EQ(f["ledger"].as_object().at("recorded").as_int64(), 1);
}

TEST_F(ProviderCoreTest, OverTheFlowCapTheAnswerIsNoUntilASlotFrees) {
  SimSystem sys(world, R"({"rules": [{"verdict": "claim", "proto": "tcp", "ports": [443]}], "limits": {"max_flows": 2}})");
  ASSERT_EQ(sys.start(), "");
  auto one = sys.connect_tcp(ep("198.51.100.7", 443));
  auto two = sys.connect_tcp(ep("198.51.100.7", 443));
  auto three = sys.connect_tcp(ep("198.51.100.7", 443));
  EXPECT_TRUE(one->claimed());
  EXPECT_TRUE(two->claimed());
  EXPECT_FALSE(three->claimed());  // NO, not a failed flow: the system carries it
  EXPECT_EQ(three->ask("overflow"), "127.0.0.2 overflow");
  EXPECT_EQ(one->ask("one"), "127.0.0.1 one");
  EXPECT_EQ(sys.provider()->counters().over_cap, 1u);
  EXPECT_EQ(flows(sys)["bypassed"].as_int64(), 0);  // not a verdict: no reclaim would help it
  one.reset();  // the app closes: its slot frees once the relay has let the flow go
  bool claimed = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!claimed && std::chrono::steady_clock::now() < deadline) {
    auto again = sys.connect_tcp(ep("198.51.100.7", 443));
    claimed = again->claimed();
  }
  EXPECT_TRUE(claimed);
}

TEST_F(ProviderCoreTest, BeforeStartAndAfterStopTheAnswerIsNo) {
  ProviderMemory memory;
  SimSystem sys(world, "{}");
  ProviderCore core(sys, memory);
  auto sim = std::make_shared<SimTcp>(sys.env());
  relay::FlowMeta meta;
  meta.dst = ep("198.51.100.7", 443);
  EXPECT_FALSE(core.handle_new_tcp_flow(meta, sim->ops()));
  EXPECT_EQ(core.counters().not_running, 1u);
  EXPECT_EQ(core.app_message("flows"), R"({"error":"not running"})");
}

TEST_F(ProviderCoreTest, StopEndsClaimedFlowsAndAnswersNoAfterwards) {
  SimSystem sys(world, R"({"rules": [{"verdict": "claim", "proto": "tcp", "ports": [443]}], "reclaim": {"drain_ms": 50}})");
  ASSERT_EQ(sys.start(), "");
  auto app = sys.connect_tcp(ep("198.51.100.7", 443));
  ASSERT_EQ(app->ask("before"), "127.0.0.1 before");
  auto* core = sys.provider();
  core->stop();  // stopProxyWithReason: the flow does not end by itself within drain_ms: reset
  EXPECT_EQ(app->ask("after"), std::nullopt);
  EXPECT_FALSE(core->running());
  EXPECT_EQ(core->epoch(), 0u);
  auto sim = std::make_shared<SimTcp>(sys.env());
  EXPECT_FALSE(core->handle_new_tcp_flow(relay::FlowMeta{}, sim->ops()));
}

TEST_F(ProviderCoreTest, AppMessagesNameWhatTheyAnswer) {
  SimSystem sys(world, R"({"rules": []})");
  ASSERT_EQ(sys.start(), "");
  EXPECT_EQ(sys.provider()->app_message("status"), R"j({"error":"unknown command \"status\" (flows, epochs)"})j");
  auto e = json::parse(sys.provider()->app_message("epochs")).as_object();
  EXPECT_EQ(e["current"].as_int64(), 1);
  EXPECT_EQ(e["history"].as_array().at(0).as_object().at("source"), "providerConfiguration");
}

}  // namespace
}  // namespace flowrelay::apple::sim
