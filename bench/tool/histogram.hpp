#pragma once

#include <array>
#include <cstdint>

namespace flowrelay::bench {

/// Latency histogram with log-linear buckets (the HdrHistogram layout): values below 128 are
/// exact, and every power of two above is split into 128 equal sub-buckets, so a reported
/// percentile is within 1/128 (0.8 %) of the recorded value it stands for. Memory is fixed
/// (~58 KiB) whatever the count or range. Values are unitless (the tool records nanoseconds).
/// Not thread-safe: keep one per thread and merge() them when the run ends.
class Histogram {
public:
  static constexpr int sub_bits = 7;
  static constexpr std::uint64_t sub_count = std::uint64_t{1} << sub_bits;
  static constexpr std::size_t bucket_count = (64 - sub_bits + 1) * sub_count;

  void record(std::uint64_t value) noexcept;
  void merge(const Histogram& other) noexcept;
  void reset() noexcept;

  std::uint64_t count() const noexcept { return count_; }
  std::uint64_t min() const noexcept { return count_ ? min_ : 0; }
  std::uint64_t max() const noexcept { return max_; }
  double mean() const noexcept;

  /// Value at rank ceil(q * count) (q in [0, 1]); 0 when empty. q = 1 gives max().
  std::uint64_t percentile(double q) const noexcept;

  static std::size_t bucket_of(std::uint64_t value) noexcept;
  static std::uint64_t bucket_low(std::size_t index) noexcept;
  static std::uint64_t bucket_width(std::size_t index) noexcept;

private:
  std::array<std::uint64_t, bucket_count> buckets_{};
  std::uint64_t count_ = 0;
  std::uint64_t min_ = ~std::uint64_t{0};
  std::uint64_t max_ = 0;
  long double sum_ = 0;
};

} // namespace flowrelay::bench
