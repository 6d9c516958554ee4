// The network settings the provider installs: every flow the rules claim is offered (a property
// checked on random rules and flows), within what NENetworkRule can express.

#include "extension/apple/network_settings.hpp"

#include "extension/control/rule_set.hpp"

#include <gtest/gtest.h>

#include <random>

namespace flowrelay::apple {
namespace {

control::Config parse(const std::string& text) { return control::parse_config(text, control::PlatformCaps::for_apple()); }

relay::FlowMeta flow(relay::Proto proto, const char* address, std::uint16_t port) {
  relay::FlowMeta m;
  m.proto = proto;
  m.dst = {boost::asio::ip::make_address(address), port};
  return m;
}

std::vector<std::string> strings(const NetworkSettings& s) {
  std::vector<std::string> out;
  for (const auto& r : s.included) out.push_back(r.to_string());
  return out;
}

TEST(NetworkSettings, ByDefaultEveryOutboundFlowButLoopbackIsOffered) {
  auto s = network_settings_for(parse(R"({"rules": [{"verdict": "claim", "ports": [443]}]})"));
  EXPECT_EQ(strings(s), std::vector<std::string>{"any:any any"});
  EXPECT_TRUE(offers(s, flow(relay::Proto::udp, "192.0.2.1", 5353)));  // so its NO answer is ledgered
  EXPECT_FALSE(offers(s, flow(relay::Proto::tcp, "127.0.0.1", 443)));  // the platform's wildcard skips loopback
}

TEST(NetworkSettings, ClaimsOnlyNamesEachPortUpToALimit) {
  auto s = network_settings_for(parse(R"({"apple": {"offer": "claims"}, "rules": [
      {"verdict": "claim", "proto": "tcp", "dst": ["192.0.2.0/24", "2001:db8::/32"], "ports": [443, "8000-8002"]},
      {"verdict": "claim", "proto": "udp", "ports": ["1000-2000"]},
      {"verdict": "bypass", "proto": "tcp", "ports": [22]}]})"));
  EXPECT_EQ(strings(s), (std::vector<std::string>{
                            "192.0.2.0/24:443 tcp", "192.0.2.0/24:8000 tcp", "192.0.2.0/24:8001 tcp",
                            "192.0.2.0/24:8002 tcp", "2001:db8::/32:443 tcp", "2001:db8::/32:8000 tcp",
                            "2001:db8::/32:8001 tcp", "2001:db8::/32:8002 tcp", "any:any udp"}));
  EXPECT_FALSE(s.collapsed);
  EXPECT_FALSE(offers(s, flow(relay::Proto::tcp, "192.0.2.9", 22)));  // bypass rules add nothing
}

TEST(NetworkSettings, PortFiftyThreeCannotBeNamedSoItsNetworkIsIncludedWhole) {
  auto s = network_settings_for(parse(R"({"apple": {"offer": "claims"}, "rules": [
      {"verdict": "claim", "proto": "udp", "dst": ["192.0.2.53/32"], "ports": [53]}]})"));
  EXPECT_EQ(strings(s), std::vector<std::string>{"192.0.2.53/32:any udp"});
  EXPECT_TRUE(offers(s, flow(relay::Proto::udp, "192.0.2.53", 53)));
}

TEST(NetworkSettings, ExplicitLoopbackIsIncludedOnTopOfTheWildcard) {
  auto s = network_settings_for(parse(R"({"default": "claim", "rules": [
      {"verdict": "claim", "dst": ["127.0.0.0/8", "0.0.0.0/0"], "ports": [9000]}]})"));
  EXPECT_EQ(strings(s), (std::vector<std::string>{"any:any any", "127.0.0.0/8:9000 any"}));
  EXPECT_TRUE(offers(s, flow(relay::Proto::tcp, "127.0.0.1", 9000)));
  EXPECT_FALSE(offers(s, flow(relay::Proto::tcp, "127.0.0.1", 9001)));
}

TEST(NetworkSettings, TooManyRulesCollapseToOneCatchAllPerProtocol) {
  std::string rules;
  for (int i = 0; i < 40; ++i)
    rules += std::string(i ? "," : "") + R"({"verdict": "claim", "proto": "tcp", "dst": ["10.)" + std::to_string(i) +
             R"(.0.0/16"], "ports": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]})";
  auto s = network_settings_for(parse(R"({"apple": {"offer": "claims"}, "rules": [)" + rules + "]}"), 512);
  EXPECT_TRUE(s.collapsed);
  EXPECT_EQ(strings(s), std::vector<std::string>{"any:any tcp"});
  EXPECT_TRUE(offers(s, flow(relay::Proto::tcp, "10.39.1.1", 16)));
}

// Whatever the rules, a flow they claim is offered (loopback aside, unless named): with too
// little included, handleNewFlow: would never see a flow the user wanted claimed.
TEST(NetworkSettings, EveryFlowTheRulesClaimIsOffered) {
  std::mt19937 rng(7);
  auto pick = [&](int n) { return int(rng() % unsigned(n)); };
  const char* nets[] = {"192.0.2.0/24", "192.0.2.128/25", "198.51.100.7/32", "2001:db8::/48", "10.0.0.0/8"};
  const char* addrs[] = {"192.0.2.1", "192.0.2.200", "198.51.100.7", "2001:db8::5", "10.1.2.3", "203.0.113.9", "::ffff:192.0.2.1"};
  for (int round = 0; round < 200; ++round) {
    std::string rules;
    const int n = 1 + pick(6);
    for (int i = 0; i < n; ++i) {
      std::string r = R"({"verdict": ")" + std::string(pick(3) ? "claim" : "bypass") + R"(", "proto": ")" +
                      std::string(pick(3) == 0 ? "udp" : pick(2) ? "tcp" : "any") + "\"";
      if (pick(2)) r += R"(, "dst": [")" + std::string(nets[pick(5)]) + "\"]";
      if (pick(3)) {
        const int lo = 1 + pick(100);
        r += R"(, "ports": [)" + std::to_string(lo) + (pick(2) ? R"(, ")" + std::to_string(lo) + "-" +
                                                                    std::to_string(lo + pick(30)) + "\""
                                                              : std::string(", 53")) + "]";
      }
      rules += (i ? "," : "") + r + "}";
    }
    const auto text = R"({"apple": {"offer": "claims"}, "default": ")" + std::string(pick(5) ? "bypass" : "claim") +
                      R"(", "rules": [)" + rules + "]}";
    const auto config = parse(text);
    const control::RuleSet rules_set(config);
    const auto settings = network_settings_for(config, 64);
    for (int f = 0; f < 50; ++f) {
      auto m = flow(pick(2) ? relay::Proto::tcp : relay::Proto::udp, addrs[pick(7)], std::uint16_t(1 + pick(140)));
      if (rules_set.verdict(m) == control::Verdict::claim) {
        ASSERT_TRUE(offers(settings, m)) << text << "\nflow " << m.dst.to_string();
      }
    }
  }
}

}  // namespace
}  // namespace flowrelay::apple
