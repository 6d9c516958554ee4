#include "relay/log.hpp"

#include <gtest/gtest.h>

namespace flowrelay::relay {
namespace {

using namespace std::chrono_literals;

TEST(LogLimiter, LetsTheFirstLinesOfASecondThroughAndReportsTheRestWithTheNext) {
  LogLimiter limit(10);
  const auto t0 = LogLimiter::Clock::now();
  int logged = 0;
  std::uint64_t held = 0;
  for (int i = 0; i < 1000; ++i) logged += limit.allow(held, t0 + std::chrono::microseconds(i)) ? 1 : 0;
  EXPECT_EQ(logged, 10);  // a flood of 1,000 in a millisecond writes 10 lines
  EXPECT_FALSE(limit.allow(held, t0 + 999ms));
  ASSERT_TRUE(limit.allow(held, t0 + 1001ms));  // a new second
  EXPECT_EQ(held, 991u);  // the next line says how many were not written
  ASSERT_TRUE(limit.allow(held, t0 + 1002ms));
  EXPECT_EQ(held, 0u);
}

}  // namespace
}  // namespace flowrelay::relay
