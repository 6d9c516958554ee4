#include "histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace flowrelay::bench {

std::size_t Histogram::bucket_of(std::uint64_t value) noexcept {
  if (value < sub_count) return static_cast<std::size_t>(value);
  const int msb = 63 - std::countl_zero(value);
  const int shift = msb - sub_bits;
  // (value >> shift) lies in [sub_count, 2 * sub_count): one octave, sub_count linear steps.
  return static_cast<std::size_t>(shift + 1) * sub_count + ((value >> shift) - sub_count);
}

std::uint64_t Histogram::bucket_low(std::size_t index) noexcept {
  if (index < sub_count) return index;
  const std::size_t shift = index / sub_count - 1;
  return (index % sub_count + sub_count) << shift;
}

std::uint64_t Histogram::bucket_width(std::size_t index) noexcept {
  if (index < sub_count) return 1;
  return std::uint64_t{1} << (index / sub_count - 1);
}

void Histogram::record(std::uint64_t value) noexcept {
  ++buckets_[bucket_of(value)];
  ++count_;
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
  sum_ += value;
}

void Histogram::merge(const Histogram& other) noexcept {
  for (std::size_t i = 0; i < bucket_count; ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  sum_ += other.sum_;
}

void Histogram::reset() noexcept { *this = Histogram{}; }

double Histogram::mean() const noexcept {
  return count_ ? static_cast<double>(sum_ / count_) : 0.0;
}

std::uint64_t Histogram::percentile(double q) const noexcept {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_)));
  rank = std::clamp<std::uint64_t>(rank, 1, count_);
  if (rank == count_) return max_;
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < bucket_count; ++i) {
    seen += buckets_[i];
    if (seen >= rank) {
      // The middle of the bucket, never outside what was actually recorded.
      const std::uint64_t mid = bucket_low(i) + (bucket_width(i) - 1) / 2;
      return std::clamp(mid, min_, max_);
    }
  }
  return max_;
}

} // namespace flowrelay::bench
