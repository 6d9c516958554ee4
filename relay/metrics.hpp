#pragma once
// Counters and histograms for the Prometheus exposition (DESIGN.md, "Observability"), kept per
// thread: each reactor thread writes its own block (a relaxed load and store, no locked
// instruction, no cache line shared with another writer), and a scrape sums the blocks.

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace flowrelay::relay::metrics {

/// Histogram bucket bounds, in seconds (Prometheus `le`); one more bucket holds the rest.
inline constexpr std::array<double, 12> kBounds = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                   0.01,   0.025,   0.05,   0.1,   0.5,    1.0};
inline constexpr std::size_t kBuckets = kBounds.size() + 1;
std::size_t bucket_of(double seconds) noexcept;

/// A histogram's figures (a scrape's sum, or one owned by a single thread).
struct HistogramValues {
  std::array<std::uint64_t, kBuckets> buckets{};  // per bucket, not cumulative
  std::uint64_t count = 0;
  double sum = 0;
  void observe(double seconds) noexcept {
    ++buckets[bucket_of(seconds)];
    ++count;
    sum += seconds;
  }
};

/// A histogram written by one thread and read by any (a scrape).
class Histogram {
 public:
  /// Owner thread only.
  void observe(double seconds) noexcept;
  /// Any thread: adds this histogram's figures to `into`.
  void add_to(HistogramValues& into) const noexcept;

 private:
  std::array<std::atomic<std::uint64_t>, kBuckets> counts_{};
  std::atomic<std::uint64_t> count_{0};
  std::atomic<double> sum_{0};
};

enum class DialFailure : std::uint8_t { refused, timeout, unreachable, proxy, other };  // proxy: a handshake failed
inline constexpr std::size_t kDialFailureKinds = 5;
const char* to_string(DialFailure f) noexcept;

/// One way out's dials as one thread counted them.
struct DialCounters {
  std::atomic<const char*> via{nullptr};  // an interned name (relay::intern_via); null: slot unused
  Histogram dial;                         // successful TCP dials, connect() (and handshake) to connected
  std::array<std::atomic<std::uint64_t>, kDialFailureKinds> failures{};
};

/// Ways out counted apart per thread; past that many, the last slot counts the rest as "other".
inline constexpr std::size_t kVias = 8;

/// One thread's block.
struct alignas(64) ThreadBlock {
  std::array<DialCounters, kVias> dials;
  /// Owner thread only: the slot of `via` (an interned pointer), taken on first use.
  DialCounters& dials_for(const char* via) noexcept;
};

/// The calling thread's block (registered on first use; lives as long as the process).
ThreadBlock& local() noexcept;

/// Sums of every thread's block, for a scrape: per way out, in order of first use.
struct ViaTotals {
  const char* via = nullptr;
  HistogramValues dial;
  std::array<std::uint64_t, kDialFailureKinds> failures{};
};
struct Totals {
  std::vector<ViaTotals> vias;
};
Totals collect();

/// Owner-thread increment of a per-thread counter.
inline void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) noexcept {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

}  // namespace flowrelay::relay::metrics
