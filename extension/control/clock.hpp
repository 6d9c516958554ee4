#pragma once
// Time as the control plane sees it: injected, so debounce, rate limits and durations are testable.

#include <chrono>

namespace flowrelay::control {

using SteadyTime = std::chrono::steady_clock::time_point;
using WallTime = std::chrono::system_clock::time_point;

/// A source of time. `now()` drives deadlines; `wall_now()` only labels history for humans.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual SteadyTime now() const = 0;
  virtual WallTime wall_now() const = 0;
};

/// The real clocks.
class SystemClock final : public Clock {
 public:
  SteadyTime now() const override { return std::chrono::steady_clock::now(); }
  WallTime wall_now() const override { return std::chrono::system_clock::now(); }
};

/// A clock that moves only when told to; wall time moves with it. For tests and simulations.
class ManualClock final : public Clock {
 public:
  SteadyTime now() const override { return now_; }
  WallTime wall_now() const override {
    return WallTime{} + std::chrono::duration_cast<WallTime::duration>(now_.time_since_epoch());
  }
  void advance(std::chrono::steady_clock::duration d) { now_ += d; }

 private:
  SteadyTime now_{std::chrono::hours(1)};
};

}  // namespace flowrelay::control
