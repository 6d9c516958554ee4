#include "extension/control/config_watcher.hpp"

#include <gtest/gtest.h>

namespace flowrelay::control {
namespace {

using namespace std::chrono_literals;

std::string claim_port(int port, int debounce_ms = 250) {
  return R"({"rules": [{"name": "p", "verdict": "claim", "ports": [)" + std::to_string(port) +
         R"(]}], "reclaim": {"debounce_ms": )" + std::to_string(debounce_ms) + "}}";
}

struct ControlWatcher : ::testing::Test {
  ManualClock clock;
  EpochManager epochs{PlatformCaps::for_linux(), clock};
  std::vector<relay::EpochId> accepted;
  std::vector<EpochEvent> reports;
  ConfigWatcher watcher{epochs, clock,
                        {[this](const std::shared_ptr<const Epoch>& e) { accepted.push_back(e->id); },
                         [this](const EpochEvent& e) { reports.push_back(e); }}};
  PushSource push{"push:test"};

  void SetUp() override { watcher.add_source(push); }
  int running_port() { return epochs.current()->config->rules.at(0).ports.at(0).lo; }
  void settle() {
    clock.advance(10s);
    watcher.tick();
  }
};

TEST_F(ControlWatcher, ABurstWithinTheDebounceMakesOneEpochFromTheLastContent) {
  for (int i = 0; i < 5; ++i) {
    push.push(claim_port(1000 + i));
    clock.advance(100ms);  // each event restarts the 250 ms quiet period
    watcher.tick();
  }
  EXPECT_TRUE(accepted.empty());
  ASSERT_TRUE(watcher.next_deadline());
  EXPECT_EQ(*watcher.next_deadline() - clock.now(), 150ms);
  clock.advance(149ms);
  watcher.tick();
  EXPECT_TRUE(accepted.empty());
  clock.advance(1ms);
  watcher.tick();
  EXPECT_EQ(accepted, std::vector<relay::EpochId>{1});
  EXPECT_EQ(running_port(), 1004);
  EXPECT_EQ(epochs.history().size(), 1u);
  EXPECT_FALSE(watcher.next_deadline());
}

TEST_F(ControlWatcher, ABadFileBetweenTwoGoodOnesKeepsTheEpochAndReportsTheError) {
  push.push(claim_port(443));
  settle();
  ASSERT_EQ(accepted, std::vector<relay::EpochId>{1});
  push.push(R"({"rules": [{"verdict": "claim", "ports": [70000]}]})");
  settle();
  EXPECT_EQ(accepted, std::vector<relay::EpochId>{1});
  EXPECT_EQ(epochs.current_id(), 1u);
  EXPECT_EQ(running_port(), 443);
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].kind, EpochEvent::Kind::rejected);
  EXPECT_EQ(reports[0].epoch, 1u);
  EXPECT_EQ(reports[0].error, "rules[0].ports[0]: 70000 is not a port (1-65535)");
  push.push(claim_port(8443));
  settle();
  EXPECT_EQ(accepted, (std::vector<relay::EpochId>{1, 2}));
  EXPECT_EQ(running_port(), 8443);
  ASSERT_EQ(epochs.history().size(), 3u);
  EXPECT_EQ(epochs.history()[1].kind, EpochEvent::Kind::rejected);
}

TEST_F(ControlWatcher, IdenticalContentIsNotANewEpoch) {
  push.push(claim_port(443));
  settle();
  push.push(std::string("\n") + claim_port(443) + "\n\n");  // re-saved with other whitespace
  settle();
  EXPECT_EQ(accepted, std::vector<relay::EpochId>{1});
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].kind, EpochEvent::Kind::unchanged);
  EXPECT_EQ(epochs.current_id(), 1u);
}

TEST_F(ControlWatcher, ADeletedFileKeepsTheEpochAndIsReported) {
  push.push(claim_port(443));
  settle();
  watcher.on_event({ConfigEvent::Kind::deleted, "file:/etc/flowrelay.json", {}, {}});
  settle();
  EXPECT_EQ(epochs.current_id(), 1u);
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].kind, EpochEvent::Kind::source_error);
  EXPECT_EQ(reports[0].error, "file deleted");
  EXPECT_EQ(reports[0].source, "file:/etc/flowrelay.json");
}

TEST_F(ControlWatcher, DeleteThenRecreateWithinTheDebounceIsJustTheNewContent) {
  push.push(claim_port(443));
  settle();
  watcher.on_event({ConfigEvent::Kind::deleted, "file:x", {}, {}});
  clock.advance(10ms);
  watcher.on_event({ConfigEvent::Kind::content, "file:x", claim_port(80), {}});
  settle();
  EXPECT_TRUE(reports.empty());
  EXPECT_EQ(accepted, (std::vector<relay::EpochId>{1, 2}));
  EXPECT_EQ(running_port(), 80);
}

TEST_F(ControlWatcher, TheRunningConfigSetsTheDebounce) {
  push.push(claim_port(443, 1000));
  settle();
  push.push(claim_port(80, 1000));
  clock.advance(999ms);
  watcher.tick();
  EXPECT_EQ(accepted.size(), 1u);
  clock.advance(1ms);
  watcher.tick();
  EXPECT_EQ(accepted.size(), 2u);
}

TEST_F(ControlWatcher, AnEndlessBurstIsCutAfterEightQuietPeriods) {
  for (int i = 0; i < 20; ++i) {  // every 100 ms for 2 s: never quiet for 250 ms
    push.push(claim_port(2000 + i));
    clock.advance(100ms);
    watcher.tick();
  }
  EXPECT_EQ(accepted, std::vector<relay::EpochId>{1});  // applied at 2.0 s = 8 x 250 ms
  EXPECT_EQ(running_port(), 2019);
}

TEST_F(ControlWatcher, FlushAppliesAtOnce) {
  push.push(claim_port(443));
  watcher.flush();
  EXPECT_EQ(accepted, std::vector<relay::EpochId>{1});
}

TEST_F(ControlWatcher, AStoppedPushSourceDeliversNothing) {
  push.stop();
  EXPECT_FALSE(push.push(claim_port(443)));
  settle();
  EXPECT_TRUE(accepted.empty());
}

}  // namespace
}  // namespace flowrelay::control
