#include "histogram.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

using flowrelay::bench::Histogram;

namespace {

// The exact value at rank ceil(q * n) of a sorted sample: what the histogram approximates.
std::uint64_t reference(const std::vector<std::uint64_t>& sorted, double q) {
  auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

void expect_close_to_reference(const Histogram& h, std::vector<std::uint64_t> values) {
  std::sort(values.begin(), values.end());
  for (double q : {0.0, 0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0}) {
    const auto exact = reference(values, q);
    const auto got = h.percentile(q);
    // One bucket is at most 1/128 of its lower bound wide.
    const double tolerance = std::max(1.0, static_cast<double>(exact) / Histogram::sub_count);
    EXPECT_LE(std::fabs(static_cast<double>(got) - static_cast<double>(exact)), tolerance)
        << "q=" << q << " exact=" << exact << " got=" << got;
  }
  EXPECT_EQ(h.max(), values.back());
  EXPECT_EQ(h.min(), values.front());
  EXPECT_EQ(h.count(), values.size());
}

} // namespace

TEST(Histogram, EmptyReportsZero) {
  Histogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.percentile(0.5), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.mean(), 0.0);
}

TEST(Histogram, SmallValuesAreExact) {
  Histogram h;
  for (std::uint64_t v = 0; v < 100; ++v) h.record(v);
  EXPECT_EQ(h.percentile(0.5), 49u);
  EXPECT_EQ(h.percentile(0.9), 89u);
  EXPECT_EQ(h.percentile(1.0), 99u);
  EXPECT_DOUBLE_EQ(h.mean(), 49.5);
}

TEST(Histogram, BucketsTileTheRangeWithoutGaps) {
  for (std::size_t i = 0; i + 1 < Histogram::bucket_count; ++i) {
    ASSERT_EQ(Histogram::bucket_low(i) + Histogram::bucket_width(i), Histogram::bucket_low(i + 1)) << i;
    ASSERT_EQ(Histogram::bucket_of(Histogram::bucket_low(i)), i);
    ASSERT_EQ(Histogram::bucket_of(Histogram::bucket_low(i + 1) - 1), i);
  }
  EXPECT_EQ(Histogram::bucket_of(~std::uint64_t{0}), Histogram::bucket_count - 1);
}

TEST(Histogram, PercentilesMatchSortedReferenceOnUniformData) {
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<std::uint64_t> dist(0, 10'000'000);
  Histogram h;
  std::vector<std::uint64_t> values;
  for (int i = 0; i < 200'000; ++i) {
    values.push_back(dist(rng));
    h.record(values.back());
  }
  expect_close_to_reference(h, values);
}

TEST(Histogram, PercentilesMatchSortedReferenceOnHeavyTailedData) {
  // Latency-like: most values near 20 us, a long tail up to seconds.
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> dist(std::log(20'000.0), 1.5);
  Histogram h;
  std::vector<std::uint64_t> values;
  for (int i = 0; i < 100'000; ++i) {
    values.push_back(static_cast<std::uint64_t>(dist(rng)));
    h.record(values.back());
  }
  expect_close_to_reference(h, values);
}

TEST(Histogram, MergeEqualsRecordingEverythingInOne) {
  std::mt19937_64 rng(3);
  std::exponential_distribution<double> dist(1.0 / 50'000);
  Histogram a, b, all;
  std::vector<std::uint64_t> values;
  for (int i = 0; i < 50'000; ++i) {
    const auto v = static_cast<std::uint64_t>(dist(rng));
    values.push_back(v);
    (i % 3 ? a : b).record(v);
    all.record(v);
  }
  a.merge(b);
  for (double q : {0.5, 0.9, 0.99, 0.999}) EXPECT_EQ(a.percentile(q), all.percentile(q));
  expect_close_to_reference(a, values);
}

TEST(Histogram, HugeValuesStayBounded) {
  Histogram h;
  h.record(~std::uint64_t{0});
  h.record(1);
  EXPECT_EQ(h.max(), ~std::uint64_t{0});
  EXPECT_EQ(h.percentile(0.5), 1u);
  EXPECT_EQ(h.percentile(1.0), ~std::uint64_t{0});
}
