#include "extension/control/control_plane.hpp"

#include "fake_host.hpp"

#include <gtest/gtest.h>

namespace flowrelay::control {
namespace {

using namespace std::chrono_literals;
using relay::Proto;
using testing_support::FakeBypassed;
using testing_support::FakeHost;
using testing_support::make_flow;

// A config file's life as the daemon sees it: content arrives from a source, is debounced,
// becomes an epoch, and the flows it flips move; a bad edit moves nothing.
TEST(ControlPlane, AFileChangeMovesTheFlippedFlowsAfterTheDebounce) {
  ManualClock clock;
  FakeBypassed bypassed;
  FakeHost host(bypassed);
  ControlPlane cp(PlatformCaps::for_linux(), host, bypassed, clock);
  std::vector<EpochEvent> reports;
  cp.on_report([&](const EpochEvent& e) { reports.push_back(e); });
  PushSource file("file:/etc/flowrelay.json");
  cp.watcher().add_source(file);

  file.push(R"({"rules": [{"name": "web", "verdict": "claim", "ports": [443]}]})");
  clock.advance(250ms);
  cp.tick();
  ASSERT_EQ(host.applied, std::vector<relay::EpochId>{1});

  host.claimed = {make_flow(1, Proto::tcp, "203.0.113.5", 443)};
  bypassed.flows = {make_flow(2, Proto::tcp, "203.0.113.5", 80), make_flow(3, Proto::udp, "203.0.113.5", 53)};
  host.calls.clear();

  file.push(R"({"rules": [{"name": "web", "verdict": "claim", "ports": [443, 80]}]})");
  ASSERT_TRUE(cp.next_deadline());
  EXPECT_EQ(*cp.next_deadline() - clock.now(), 250ms);
  clock.advance(249ms);
  cp.tick();
  EXPECT_TRUE(host.calls.empty());
  clock.advance(1ms);
  cp.tick();
  EXPECT_EQ(host.calls, (std::vector<std::string>{"apply 2", "close 2"}));
  EXPECT_EQ(FakeHost::ids(host.claimed), "1,2");
  EXPECT_EQ(FakeHost::ids(bypassed.flows), "3");

  file.push(R"({"rules": [{"name": "web", "verdict": "claim", "ports": [443, 80, 53], "proto": "udpp"}]})");
  clock.advance(250ms);
  cp.tick();
  EXPECT_EQ(host.calls.size(), 2u);
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].error, "rules[0].proto: \"udpp\" is not one of tcp|udp|any");
  EXPECT_EQ(cp.epochs().current_id(), 2u);
  EXPECT_FALSE(cp.next_deadline());
}

TEST(ControlPlane, NextDeadlineIsTheEarlierOfWatcherAndController) {
  ManualClock clock;
  FakeBypassed bypassed;
  FakeHost host(bypassed);
  host.caps = {false, false, true};
  ControlPlane cp(PlatformCaps::for_apple(), host, bypassed, clock);
  PushSource push("push:kvo");
  cp.watcher().add_source(push);
  const std::string a = R"({"rules": [{"verdict": "claim", "ports": [443]}], "reclaim": {"policy": "restart"}})";
  const std::string b = R"({"rules": [{"verdict": "claim", "ports": [443, 80]}], "reclaim": {"policy": "restart"}})";
  const std::string c = R"({"rules": [{"verdict": "claim", "ports": [443, 80, 22]}], "reclaim": {"policy": "restart"}})";
  push.push(a);
  cp.watcher().flush();
  bypassed.flows = {make_flow(1, Proto::tcp, "203.0.113.5", 80), make_flow(2, Proto::tcp, "203.0.113.5", 22)};
  push.push(b);
  cp.watcher().flush();
  EXPECT_EQ(host.restarts, 1);
  push.push(c);
  cp.watcher().flush();  // needs a restart too: deferred 10 s
  EXPECT_EQ(host.restarts, 1);
  clock.advance(3s);
  push.push(a);  // watcher deadline 250 ms away, controller's 7 s away
  EXPECT_EQ(*cp.next_deadline() - clock.now(), 250ms);
  clock.advance(250ms);
  cp.tick();
  EXPECT_EQ(*cp.next_deadline() - clock.now(), 6750ms);
  clock.advance(6750ms);
  cp.tick();
  EXPECT_EQ(host.restarts, 1);  // epoch 4 (= a) claims neither :22 nor :80 flows any more
  EXPECT_FALSE(cp.next_deadline());
}

}  // namespace
}  // namespace flowrelay::control
