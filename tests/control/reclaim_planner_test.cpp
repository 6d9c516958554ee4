#include "extension/control/reclaim_planner.hpp"

#include "fake_host.hpp"

#include <gtest/gtest.h>

namespace flowrelay::control {
namespace {

using relay::Proto;
using testing_support::FakeHost;
using testing_support::make_flow;

struct ControlPlanner : ::testing::Test {
  ManualClock clock;
  EpochManager epochs{PlatformCaps::for_linux(), clock};
  std::shared_ptr<const Epoch> accept(const std::string& rules) {
    auto e = epochs.submit(R"({"rules": [)" + rules + "]}", "test");
    EXPECT_EQ(e.kind, EpochEvent::Kind::accepted) << e.error;
    return epochs.current();
  }
  std::vector<relay::FlowMeta> claimed{make_flow(1, Proto::tcp, "203.0.113.5", 443),
                                       make_flow(2, Proto::udp, "203.0.113.5", 443)};
  std::vector<relay::FlowMeta> bypassed{make_flow(3, Proto::tcp, "203.0.113.5", 80),
                                        make_flow(4, Proto::udp, "203.0.113.5", 80),
                                        make_flow(5, Proto::tcp, "203.0.113.5", 22)};
};

TEST_F(ControlPlanner, MovesOnlyFlowsWhoseVerdictFlips) {
  auto a = accept(R"({"verdict": "claim", "ports": [443]})");
  auto b = accept(R"({"verdict": "claim", "proto": "tcp", "ports": [443]}, {"verdict": "claim", "ports": [80]})");
  auto p = plan(a.get(), *b, claimed, bypassed, {true, true, false});
  EXPECT_EQ(FakeHost::ids(p.release), "2");    // udp :443 no longer claimed
  EXPECT_EQ(FakeHost::ids(p.reclaim), "3,4");  // :80 now claimed; :22 in neither list
  EXPECT_FALSE(p.restart_needed);
  EXPECT_EQ(p.from, 1u);
  EXPECT_EQ(p.to, 2u);
  EXPECT_EQ(p.stale, 0u);
  EXPECT_EQ(p.claimed_seen, 2u);
  EXPECT_EQ(p.bypassed_seen, 3u);
}

TEST_F(ControlPlanner, RestartIsNeededOnlyForAProtocolTheHostCannotClose) {
  auto a = accept(R"({"verdict": "claim", "ports": [443]})");
  auto b = accept(R"({"verdict": "claim", "ports": [443]}, {"verdict": "claim", "proto": "udp", "ports": [80]})");
  EXPECT_FALSE(plan(a.get(), *b, claimed, bypassed, {false, true, false}).restart_needed);
  EXPECT_TRUE(plan(a.get(), *b, claimed, bypassed, {true, false, false}).restart_needed);
  auto narrow = accept(R"({"verdict": "claim", "proto": "tcp", "ports": [443]})");
  auto p = plan(b.get(), *narrow, claimed, bypassed, {false, false, true});
  EXPECT_TRUE(p.reclaim.empty());
  EXPECT_FALSE(p.restart_needed);  // releases never need a restart
}

TEST_F(ControlPlanner, FlowsLeftOutOfPlaceEarlierAreMovedAndCountedStale) {
  auto a = accept(R"({"verdict": "claim", "ports": [80]})");  // :80 claim, but the :80 flows stayed bypassed
  auto b = accept(R"({"verdict": "claim", "ports": [80]}, {"verdict": "bypass"})");
  auto p = plan(a.get(), *b, claimed, bypassed, {true, true, false});
  EXPECT_EQ(FakeHost::ids(p.reclaim), "3,4");
  EXPECT_EQ(FakeHost::ids(p.release), "1,2");
  EXPECT_EQ(p.stale, 4u);
}

TEST_F(ControlPlanner, WithoutAPreviousEpochEverythingOutOfPlaceMoves) {
  auto a = accept(R"({"verdict": "claim", "ports": [22]})");
  auto p = plan(nullptr, *a, claimed, bypassed, {true, true, false});
  EXPECT_EQ(p.from, 0u);
  EXPECT_EQ(FakeHost::ids(p.release), "1,2");
  EXPECT_EQ(FakeHost::ids(p.reclaim), "5");
}

}  // namespace
}  // namespace flowrelay::control
