#pragma once
// One spdlog logger per module, looked up by name: the one registered under that name (a host
// program may register its own sinks first), or a stderr logger created once.

#include <spdlog/logger.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>

namespace flowrelay::relay {

/// Thread-safe; the same logger every time for one name. Keep the result (a static local) on hot
/// paths: the lookup takes spdlog's registry lock.
std::shared_ptr<spdlog::logger> named_logger(const std::string& name);

/// Rate limit for a log line that traffic can trigger (a failed dial, a dropped datagram): at most
/// `per_second` lines a second from one call site; what was held back is reported with the next
/// line let through. Any thread; lock-free; the counters are the exact record, the log a sample.
///
///   static LogLimiter limit(10);
///   if (std::uint64_t held; limit.allow(held)) log->warn("... ({} like it not logged)", held);
class LogLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  explicit LogLimiter(std::uint32_t per_second) : per_second_(per_second) {}

  /// True: log this one; `held_back` is then how many were suppressed since the last one logged.
  bool allow(std::uint64_t& held_back, Clock::time_point now = Clock::now()) noexcept {
    const std::int64_t t = now.time_since_epoch().count();
    std::int64_t start = window_.load(std::memory_order_relaxed);
    if (t - start >= kSecond && window_.compare_exchange_strong(start, t, std::memory_order_relaxed))
      used_.store(0, std::memory_order_relaxed);
    if (used_.fetch_add(1, std::memory_order_relaxed) >= per_second_) {
      held_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    held_back = held_.exchange(0, std::memory_order_relaxed);
    return true;
  }

 private:
  static constexpr std::int64_t kSecond =
      std::chrono::duration_cast<Clock::duration>(std::chrono::seconds(1)).count();
  const std::uint32_t per_second_;
  std::atomic<std::int64_t> window_{std::numeric_limits<std::int64_t>::min() / 2};
  std::atomic<std::uint32_t> used_{0};
  std::atomic<std::uint64_t> held_{0};
};

}  // namespace flowrelay::relay
