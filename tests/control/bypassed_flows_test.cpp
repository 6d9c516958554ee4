#include "extension/control/bypassed_flows.hpp"

#include <gtest/gtest.h>

namespace flowrelay::control {
namespace {

using namespace std::chrono_literals;

relay::FlowMeta flow(relay::FlowId id) {
  relay::FlowMeta f;
  f.id = id;
  return f;
}

std::vector<relay::FlowId> ids(std::vector<relay::FlowMeta> v) {
  std::vector<relay::FlowId> out;
  for (auto& f : v) out.push_back(f.id);
  return out;
}

TEST(ControlBypassLedger, DropsOldestWhenFullAndCountsIt) {
  ManualClock clock;
  BypassLedger l(clock, 3, 1h);
  for (relay::FlowId i = 1; i <= 5; ++i) l.record(flow(i));
  EXPECT_EQ(ids(l.snapshot()), (std::vector<relay::FlowId>{3, 4, 5}));
  EXPECT_EQ(l.stats().dropped_full, 2u);
  EXPECT_EQ(l.stats().entries, 3u);
  EXPECT_EQ(l.stats().recorded, 5u);
}

TEST(ControlBypassLedger, ExpiresByAgeAndRecordingAgainRefreshes) {
  ManualClock clock;
  BypassLedger l(clock, 100, 60s);
  l.record(flow(1));
  l.record(flow(2));
  clock.advance(40s);
  l.record(flow(1));  // seen again: young again
  l.record(flow(3));
  clock.advance(21s);
  EXPECT_EQ(ids(l.snapshot()), (std::vector<relay::FlowId>{1, 3}));
  EXPECT_EQ(l.stats().dropped_aged, 1u);
  clock.advance(40s);
  EXPECT_TRUE(l.snapshot().empty());
  EXPECT_EQ(l.stats().dropped_aged, 3u);
}

TEST(ControlBypassLedger, ForgetAndClearRemoveEntries) {
  ManualClock clock;
  BypassLedger l(clock, 10, 1h);
  l.record(flow(1));
  l.record(flow(2));
  EXPECT_TRUE(l.forget(1));
  EXPECT_FALSE(l.forget(1));
  EXPECT_EQ(ids(l.snapshot()), std::vector<relay::FlowId>{2});
  l.clear();
  EXPECT_TRUE(l.snapshot().empty());
  EXPECT_EQ(l.stats().forgotten, 2u);
}

}  // namespace
}  // namespace flowrelay::control
