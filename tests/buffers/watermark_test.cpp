#include "buffers/watermark.hpp"

#include <gtest/gtest.h>

namespace flowrelay::buffers {
namespace {

using C = Watermark::Crossing;

TEST(Watermark, FiresOncePerCrossingWithGap) {
  Watermark w(256 * 1024);
  EXPECT_EQ(w.low(), 128u * 1024);
  EXPECT_EQ(w.update(100'000), C::none);
  EXPECT_EQ(w.update(262'144), C::high);
  EXPECT_TRUE(w.above());
  EXPECT_EQ(w.update(300'000), C::none);  // still above: no second event
  EXPECT_EQ(w.update(200'000), C::none);  // between the marks: still paused
  EXPECT_TRUE(w.above());
  EXPECT_EQ(w.update(131'072), C::low);
  EXPECT_EQ(w.update(0), C::none);
  EXPECT_EQ(w.update(262'144), C::high);
}

}  // namespace
}  // namespace flowrelay::buffers
