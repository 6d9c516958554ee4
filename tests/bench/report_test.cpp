#include "report.hpp"

#include "histogram.hpp"

#include <gtest/gtest.h>

#include <sstream>

using flowrelay::bench::Histogram;
using flowrelay::bench::Report;

TEST(Report, JsonIsOneFlatObjectOnOneLine) {
  Report r;
  r.add("mode", std::string("rr \"quoted\""));
  r.add_int("flows", 4);
  r.add("gbit_s", 12.5, "Gbit/s");
  std::ostringstream out;
  r.print_json(out);
  EXPECT_EQ(out.str(), "{\"mode\":\"rr \\\"quoted\\\"\",\"flows\":4,\"gbit_s\":12.500}\n");
}

TEST(Report, TableAlignsValuesAndShowsUnits) {
  Report r;
  r.add_int("flows", 4);
  r.add("gbit_s", 12.5, "Gbit/s");
  std::ostringstream out;
  r.print_table(out);
  EXPECT_EQ(out.str(), "flows   4\ngbit_s  12.500 Gbit/s\n");
}

TEST(Report, LatencyFieldsAreMicroseconds) {
  Histogram h;
  for (int i = 0; i < 100; ++i) h.record(20'000); // 20 us in ns
  Report r;
  r.add_latency("", h);
  EXPECT_NEAR(r.number("p50_us"), 20.0, 0.2);
  EXPECT_NEAR(r.number("p999_us"), 20.0, 0.2);
  EXPECT_NEAR(r.number("max_us"), 20.0, 1e-9);
  EXPECT_EQ(r.number("missing"), 0.0);
}
