#include "extension/control/epoch_manager.hpp"

#include <gtest/gtest.h>

namespace flowrelay::control {
namespace {

using namespace std::chrono_literals;

TEST(ControlEpochManager, NumbersAcceptedConfigsAndKeepsHistory) {
  ManualClock clock;
  EpochManager m(PlatformCaps::for_linux(), clock);
  EXPECT_EQ(m.current(), nullptr);
  EXPECT_EQ(m.current_id(), 0u);
  auto a = m.submit(R"({"rules": [{"verdict": "claim", "ports": [443]}]})", "file:a");
  EXPECT_EQ(a.kind, EpochEvent::Kind::accepted);
  EXPECT_EQ(a.epoch, 1u);
  EXPECT_EQ(a.rules, 1u);
  clock.advance(5s);
  auto b = m.submit(R"({"rules": []})", "push:socket");
  EXPECT_EQ(b.epoch, 2u);
  ASSERT_NE(m.current(), nullptr);
  EXPECT_EQ(m.current()->source, "push:socket");
  EXPECT_EQ(m.current()->accepted_at - m.history()[0].at, 5s);
  EXPECT_EQ(m.current()->rules->size(), 0u);
  ASSERT_EQ(m.history().size(), 2u);
  EXPECT_NE(m.history()[0].content_hash, m.history()[1].content_hash);
}

TEST(ControlEpochManager, GoingBackToAnEarlierConfigIsANewEpoch) {
  ManualClock clock;
  EpochManager m(PlatformCaps::for_linux(), clock);
  m.submit(R"({"rules": []})", "a");
  m.submit(R"({"rules": [{"verdict": "claim"}]})", "a");
  auto c = m.submit(R"({"rules": []})", "a");
  EXPECT_EQ(c.kind, EpochEvent::Kind::accepted);
  EXPECT_EQ(c.epoch, 3u);
}

TEST(ControlEpochManager, RejectionKeepsTheRunningEpochAndNamesThePath) {
  ManualClock clock;
  EpochManager m(PlatformCaps::for_linux(), clock);
  m.submit(R"({"rules": []})", "a");
  auto before = m.current();
  auto r = m.submit(R"({"rules": [{"verdict": "claim", "apps": ["com.x"]}]})", "a");
  EXPECT_EQ(r.kind, EpochEvent::Kind::rejected);
  EXPECT_EQ(r.epoch, 1u);
  EXPECT_EQ(r.error, "rules[0].apps: not supported on linux");
  EXPECT_EQ(m.current(), before);
}

TEST(ControlEpochManager, HistoryIsBounded) {
  ManualClock clock;
  EpochManager m(PlatformCaps::for_linux(), clock, 3);
  for (int i = 1; i <= 5; ++i) m.submit(R"({"rules": [{"verdict": "claim", "ports": [)" + std::to_string(i) + "]}]}", "a");
  ASSERT_EQ(m.history().size(), 3u);
  EXPECT_EQ(m.history().front().epoch, 3u);
  EXPECT_EQ(m.current_id(), 5u);
}

TEST(ControlEpochManager, ConfigsBuiltInCodeAreAlwaysNewEpochs) {
  ManualClock clock;
  EpochManager m(PlatformCaps::for_linux(), clock);
  EXPECT_EQ(m.submit(Config{}, "embedded").kind, EpochEvent::Kind::accepted);
  EXPECT_EQ(m.submit(Config{}, "embedded").kind, EpochEvent::Kind::accepted);
  EXPECT_EQ(m.current_id(), 2u);
}

}  // namespace
}  // namespace flowrelay::control
