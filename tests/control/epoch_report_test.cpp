#include "extension/control/epoch_report.hpp"

#include "fake_host.hpp"

#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

namespace flowrelay::control {
namespace {

using namespace std::chrono_literals;
using testing_support::FakeBypassed;
using testing_support::FakeHost;
using testing_support::make_flow;

TEST(ControlFormatTime, IsUtcWithMilliseconds) {
  EXPECT_EQ(format_time(WallTime{}), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(format_time(WallTime{} + 1'795'738'241'123ms), "2026-11-27T00:10:41.123Z");
  EXPECT_EQ(format_time(WallTime{} + 951'782'400'000ms), "2000-02-29T00:00:00.000Z");
}

TEST(ControlEpochReport, JsonAndTableShowEpochsRejectionsAndCycles) {
  ManualClock clock;
  EpochManager epochs(PlatformCaps::for_linux(), clock);
  FakeBypassed bypassed;
  FakeHost host(bypassed);
  ReclaimController controller(host, bypassed, clock);
  epochs.submit(R"({"rules": []})", "file:/etc/flowrelay.json");
  controller.on_epoch(epochs.current());
  bypassed.flows = {make_flow(7, relay::Proto::tcp, "203.0.113.5", 80)};
  epochs.submit(R"({"rules": [{"verdict": "claim", "ports": [0]}]})", "file:/etc/flowrelay.json");
  epochs.submit(R"({"rules": [{"verdict": "claim", "ports": [80]}]})", "file:/etc/flowrelay.json");
  controller.on_epoch(epochs.current());

  auto v = epochs_json(epochs, &controller);
  const auto& o = v.as_object();
  EXPECT_EQ(o.at("current").as_uint64(), 2u);
  const auto& history = o.at("history").as_array();
  ASSERT_EQ(history.size(), 3u);
  EXPECT_EQ(history[1].at("kind").as_string(), "rejected");
  EXPECT_EQ(history[1].at("epoch").as_uint64(), 1u);
  EXPECT_EQ(history[1].at("error").as_string(), "rules[0].ports[0]: 0 is not a port (1-65535)");
  EXPECT_TRUE(history[0].at("error").is_null());
  const auto& cycles = o.at("cycles").as_array();
  ASSERT_EQ(cycles.size(), 2u);
  EXPECT_EQ(cycles[1].at("from").as_uint64(), 1u);
  EXPECT_EQ(cycles[1].at("to").as_uint64(), 2u);
  EXPECT_EQ(cycles[1].at("planned").at("reclaim").as_uint64(), 1u);
  EXPECT_EQ(cycles[1].at("done").at("reclaim").as_uint64(), 1u);
  EXPECT_EQ(cycles[1].at("outcome").as_string(), "done");
  EXPECT_EQ(cycles[1].at("policy").as_string(), "surgical");

  auto table = epochs_table(epochs, &controller);
  EXPECT_NE(table.find("current epoch: 2"), std::string::npos) << table;
  EXPECT_NE(table.find("rejected"), std::string::npos) << table;
  EXPECT_NE(table.find("0 is not a port"), std::string::npos) << table;
  EXPECT_NE(table.find("1->2"), std::string::npos) << table;
  EXPECT_NE(table.find("1/1"), std::string::npos) << table;
}

}  // namespace
}  // namespace flowrelay::control
